"""Admin routes of change notifications (API.md, "Change notifications"): subscriptions, their
secret, a test event, the delivery log and replay. Declared in services/api/routes.py, every one
with admin=True; setup_webhooks(app) opens what they and the feeds use.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from aiohttp import web

from services.api import keys
from services.api.handlers.feeds import setup_feeds
from shared.db import webhooks as db
from shared.enums import DeliveryStatus, SubscriptionStatus
from shared.errors import BadRequest, NotFound, TargetRefused
from shared.schemas.api import DeliveriesQuery, ReplayRequest, SubscriptionCreate, WebhookPath, WebhooksQuery
from shared.sender import Sender
from shared.webhooks import outbox
from shared.webhooks.delivery import DeliveryResources, close_delivery_resources, open_delivery_resources
from shared.webhooks.metrics import DELIVERIES_PENDING
from shared.webhooks.objects import delivery_object, subscription_object
from shared.webhooks.subscriptions import create_subscription, rotate_secret, send_test

#: Hands one delivery id to the workers (blocking; called in a thread).
SEND: web.AppKey[Callable[[int], None]] = web.AppKey("webhook_send")
DELIVERY = web.AppKey("webhook_delivery", DeliveryResources)
#: How often the pending-deliveries gauge is refreshed.
GAUGE_EVERY = 15.0
_enc = msgspec.json.Encoder()


def setup_webhooks(
    app: web.Application, *, send: Callable[[int], None] | None = None, heartbeat: float | None = None
) -> None:
    """Open the resources of the webhook admin routes and the feeds (the routes are in routes.py)."""
    app[SEND] = send or Sender.from_settings(app[keys.SETTINGS]).deliver_changes
    app.cleanup_ctx.append(_resources)
    setup_feeds(app, heartbeat=heartbeat)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    # After create_app's own resources: the pool and Redis exist.
    res = await open_delivery_resources(app[keys.SETTINGS], app[keys.POOL], app[keys.REDIS])
    app[DELIVERY] = res
    gauge = asyncio.create_task(_pending_gauge(res))
    yield
    gauge.cancel()
    await asyncio.gather(gauge, return_exceptions=True)
    await close_delivery_resources(res)


async def _pending_gauge(res: DeliveryResources) -> None:
    """Keep the queue-depth gauge current (served on this process's /metrics)."""
    while True:
        try:
            due, waiting = await db.pending_counts(res.pool)
            DELIVERIES_PENDING.labels("due").set(due)
            DELIVERIES_PENDING.labels("waiting").set(waiting)
        except Exception:  # PostgreSQL away: the gauge keeps its last value
            pass
        await asyncio.sleep(GAUGE_EVERY)


# -- request and answer helpers ----------------------------------------------------------------


def _answer(request: web.Request, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON, never cached by anyone (answers may hold a secret); a GET gets a strong ETag."""
    body = _enc.encode(obj)
    out = {"Cache-Control": "no-store", "X-Catalog-Version": str(request.app[keys.CACHE].version), **(headers or {})}
    if request.method == "GET":
        etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        out["ETag"] = etag
        inm = request.headers.get("If-None-Match")
        if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
            return web.Response(status=304, headers=out)
    return web.Response(status=status, body=body, content_type="application/json", headers=out)


def _missing(path: WebhookPath) -> NotFound:
    return NotFound(f"no webhook subscription {path.id}")


async def _subscription(request: web.Request, path: WebhookPath) -> Any:
    row = await db.get_subscription(request.app[keys.POOL], path.id)
    if row is None:
        raise _missing(path)
    return row


# -- handlers ----------------------------------------------------------------------------------


async def create(request: web.Request, *, body: SubscriptionCreate) -> web.Response:
    try:
        sub = await create_subscription(
            request.app[keys.POOL],
            request.app[keys.SETTINGS],
            url=body.url,
            description=body.description,
            providers=body.providers,
            kinds=body.kinds,
            fields=body.fields,
        )
    except TargetRefused as e:
        raise BadRequest(f"this URL is not accepted: {e}", [("url", str(e))]) from None
    return _answer(request, sub, 201, {"Location": f"/api/v1/webhooks/{sub.id}"})


async def list_subscriptions(request: web.Request, *, query: WebhooksQuery) -> web.Response:
    pool = request.app[keys.POOL]
    rows = await db.list_subscriptions(pool, after_id=query.cursor or 0, limit=query.limit + 1)
    more, rows = len(rows) > query.limit, rows[: query.limit]
    page = {
        "data": [subscription_object(r) for r in rows],
        "total": await db.count_subscriptions(pool),
        "next_cursor": str(rows[-1]["id"]) if more else None,
    }
    return _answer(request, page)


async def get_subscription(request: web.Request, *, path: WebhookPath) -> web.Response:
    return _answer(request, subscription_object(await _subscription(request, path)))


async def delete_subscription(request: web.Request, *, path: WebhookPath) -> web.Response:
    if not await db.delete_subscription(request.app[keys.POOL], path.id):
        raise _missing(path)
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def rotate(request: web.Request, *, path: WebhookPath) -> web.Response:
    sub = await rotate_secret(request.app[keys.POOL], path.id)
    if sub is None:
        raise _missing(path)
    return _answer(request, sub)


async def enable(request: web.Request, *, path: WebhookPath) -> web.Response:
    row = await db.enable_subscription(request.app[keys.POOL], path.id)
    if row is None:
        raise _missing(path)
    return _answer(request, subscription_object(row))


async def test(request: web.Request, *, path: WebhookPath) -> web.Response:
    """Send a webhook.test event now; the answer is the delivery as its one attempt left it."""
    sub = await _subscription(request, path)
    if sub["status"] != SubscriptionStatus.ACTIVE:
        raise BadRequest("the subscription is disabled; enable it first", [("id", "disabled")])
    delivery = await send_test(request.app[DELIVERY], request.app[SEND], sub["id"])
    assert delivery is not None
    return _answer(request, delivery, 200 if delivery.status != DeliveryStatus.PENDING else 202)


async def deliveries(request: web.Request, *, path: WebhookPath, query: DeliveriesQuery) -> web.Response:
    sub, pool = await _subscription(request, path), request.app[keys.POOL]
    status = query.status
    rows = await db.deliveries_of(pool, sub["id"], before_id=query.cursor, status=status, limit=query.limit + 1)
    more, rows = len(rows) > query.limit, rows[: query.limit]
    page = {
        "data": [delivery_object(r) for r in rows],
        "total": await db.count_deliveries(pool, sub["id"], status=status),
        "next_cursor": str(rows[-1]["id"]) if more else None,
    }
    return _answer(request, page)


async def replay(request: web.Request, *, path: WebhookPath, body: ReplayRequest) -> web.Response:
    result = await outbox.replay(request.app[keys.POOL], request.app[SEND], path.id, body.since_seq)
    if result is None:
        raise _missing(path)
    return _answer(request, result, 202)
