"""`modelmeta webhooks list | add | remove | test | deliveries`: manage change-notification
subscriptions from the command line (the same logic as the admin routes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec

from shared.config import Settings
from shared.enums import ChangeKind, DeliveryStatus, SubscriptionStatus
from shared.errors import TargetRefused

EXIT_FAILED = 1


def add_parser(sub: Any) -> None:
    """The `webhooks` subcommand and its own subcommands."""
    w = sub.add_parser("webhooks", help="manage webhook subscriptions (change notifications)")
    cmds = w.add_subparsers(dest="webhooks_command", required=True)
    ls = cmds.add_parser("list", help="list subscriptions")
    add = cmds.add_parser("add", help="subscribe a URL; prints its secret, which is shown only once")
    add.add_argument("url")
    add.add_argument("--provider", action="append", metavar="P", help="only this provider (repeatable)")
    add.add_argument("--kind", action="append", choices=[k.value for k in ChangeKind], help="only this kind")
    add.add_argument("--field", action="append", metavar="PATTERN", help="updates of this field, e.g. cost.*")
    add.add_argument("--description")
    rm = cmds.add_parser("remove", help="delete a subscription and its delivery log")
    rm.add_argument("id", type=int)
    test = cmds.add_parser("test", help="send a webhook.test event now and show the answer")
    test.add_argument("id", type=int)
    dl = cmds.add_parser("deliveries", help="a subscription's recent deliveries")
    dl.add_argument("id", type=int)
    dl.add_argument("--status", choices=[s.value for s in DeliveryStatus])
    dl.add_argument("--limit", type=int, default=20)
    for p in (ls, add, test, dl):
        p.add_argument("--json", action="store_true", help="print JSON")


@asynccontextmanager
async def _pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    from shared.db.pool import create_pool

    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def _print(obj: Any) -> None:
    print(msgspec.json.encode(obj).decode())


def _table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


async def cmd_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    commands = {"list": _list, "add": _add, "remove": _remove, "test": _test, "deliveries": _deliveries}
    async with _pool(settings) as pool:
        return await commands[args.webhooks_command](settings, pool, args)


async def _list(settings: Settings, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    from shared.db import webhooks as db
    from shared.webhooks.objects import subscription_object

    subs = [subscription_object(r) for r in await db.list_subscriptions(pool, after_id=0, limit=10_000)]
    if args.json:
        _print(subs)
        return 0
    rows = []
    for s in subs:
        named = (("provider", s.providers), ("kind", s.kinds), ("field", s.fields))
        filters = " ".join(f"{n}={','.join(v)}" for n, v in named if v) or "everything"
        rows.append([str(s.id), s.status, s.url, filters, s.disabled_reason or ""])
    _table(
        rows,
        ["ID", "STATUS", "URL", "FILTERS", "DISABLED BECAUSE"],
    )
    return 0


async def _add(settings: Settings, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    from shared.webhooks.subscriptions import create_subscription

    try:
        sub = await create_subscription(
            pool,
            settings,
            url=args.url,
            description=args.description,
            providers=args.provider,
            kinds=args.kind,
            fields=args.field,
        )
    except TargetRefused as e:
        print(f"modelmeta: {args.url} is not accepted: {e}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        _print(sub)
    else:
        print(f"subscription {sub.id} -> {sub.url}")
        print(f"secret (shown only now; receivers verify signatures with it): {sub.secret}")
    return 0


async def _remove(settings: Settings, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    from shared.db import webhooks as db

    if not await db.delete_subscription(pool, args.id):
        print(f"modelmeta: no webhook subscription {args.id}", file=sys.stderr)
        return EXIT_FAILED
    print(f"subscription {args.id} removed")
    return 0


async def _test(settings: Settings, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from shared.db import webhooks as db
    from shared.sender import Sender
    from shared.webhooks.delivery import close_delivery_resources, open_delivery_resources
    from shared.webhooks.subscriptions import send_test

    sub = await db.get_subscription(pool, args.id)
    if sub is None or sub["status"] != SubscriptionStatus.ACTIVE:
        print(f"modelmeta: no active webhook subscription {args.id}", file=sys.stderr)
        return EXIT_FAILED
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3)
    res = await open_delivery_resources(settings, pool, redis)
    sender = Sender.from_settings(settings)
    try:
        delivery = await send_test(res, sender.deliver_changes, args.id)
    finally:
        sender.close()
        await close_delivery_resources(res)
        await redis.aclose()
    assert delivery is not None
    if args.json:
        _print(delivery)
    else:
        code = delivery.last_response_code
        print(f"{delivery.webhook_id}: {delivery.status}" + (f", HTTP {code}" if code else ""))
        if delivery.last_error:
            print(f"error: {delivery.last_error}")
    return 0 if delivery.status == DeliveryStatus.DELIVERED else EXIT_FAILED


async def _deliveries(settings: Settings, pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    from shared.db import webhooks as db
    from shared.webhooks.objects import delivery_object

    if await db.get_subscription(pool, args.id) is None:
        print(f"modelmeta: no webhook subscription {args.id}", file=sys.stderr)
        return EXIT_FAILED
    rows = await db.deliveries_of(pool, args.id, before_id=None, status=args.status, limit=args.limit)
    out = [delivery_object(r) for r in rows]
    if args.json:
        _print(out)
        return 0

    def when(v: Any) -> str:
        return v.strftime("%Y-%m-%d %H:%M:%S") if v is not None else "-"

    _table(
        [
            [
                d.webhook_id,
                d.event_type,
                d.status,
                str(d.attempts),
                str(d.last_response_code or "-"),
                f"{d.first_seq}-{d.last_seq}" if d.first_seq is not None else "-",
                when(d.next_attempt_at),
                (d.last_error or "")[:60],
            ]
            for d in out
        ],
        ["WEBHOOK-ID", "EVENT", "STATUS", "ATTEMPTS", "CODE", "SEQ", "NEXT ATTEMPT", "ERROR"],
    )
    return 0
