"""The outbox: plan committed changes into deliveries and hand them to the workers.

Each active subscription has a cursor in the change log. A planner (after every provider's commit,
and in the scheduler's sweep) takes the planners' lock, cuts the matching changes past each
cursor into batches, writes one delivery row per batch (its key, subscription and change range,
makes a second planner's write a no-op) and moves the cursors, in one transaction; then it sends
one `deliver_changes(delivery_id)` message per new row (shared.sender.Sender.deliver_changes). A
crash between the commit and the send leaves rows that the sweep sends again.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from shared.db import Conn
from shared.db import webhooks as db
from shared.enums import SubscriptionStatus
from shared.errors import BadRequest
from shared.webhooks.batches import batches
from shared.webhooks.filters import Filters
from shared.webhooks.metrics import DELIVERIES_PLANNED
from shared.webhooks.objects import Replay

log = structlog.get_logger(__name__)

#: Change-log rows read per query while planning.
PAGE = 5000
#: Stalled deliveries sent again per sweep.
SWEEP_LIMIT = 1000

#: Hands one delivery id to the workers (blocking; called in a thread): Sender.deliver_changes.
Send = Callable[[int], None]


async def send_all(send: Send, delivery_ids: Sequence[int]) -> None:
    def each() -> None:
        for delivery_id in delivery_ids:
            send(delivery_id)

    if delivery_ids:
        await asyncio.to_thread(each)


@dataclass(frozen=True, slots=True)
class _Cursor:
    subscription_id: int
    after_seq: int
    filters: Filters


def _cursor(r: Any, after_seq: int | None = None) -> _Cursor:
    filters = Filters.of(r["providers"], r["kinds"], r["fields"])
    return _Cursor(r["id"], r["cursor_seq"] if after_seq is None else after_seq, filters)


async def _plan_range(conn: Conn, cursors: Sequence[_Cursor], upto_seq: int, generation: int) -> list[int]:
    """Write the deliveries of each cursor's matching changes up to upto_seq; return the new ids."""
    ids: list[int] = []
    after = min(c.after_seq for c in cursors)
    while after < upto_seq:
        rows = await db.changes_in_range(conn, after, upto_seq, PAGE)
        if not rows:
            break
        seqs = [r["seq"] for r in rows]
        planned: list[tuple[Any, ...]] = []
        for c in cursors:
            mine = rows[bisect.bisect_right(seqs, c.after_seq) :]
            planned.extend((c.subscription_id, generation, *b.row()) for b in batches(mine, c.filters))
        ids.extend(await db.insert_deliveries(conn, planned))
        after = seqs[-1]
    return ids


async def plan_deliveries(pool: asyncpg.Pool) -> list[int]:
    """Plan every change committed past each active subscription's cursor; return the new ids."""
    if not await db.anything_to_plan(pool):
        return []
    async with pool.acquire() as conn, conn.transaction():
        await db.lock_planner(conn)
        upto = await db.latest_seq(conn)
        behind = await db.subscriptions_behind(conn, upto)
        if not behind:
            return []
        ids = await _plan_range(conn, [_cursor(r) for r in behind], upto, generation=0)
        await db.advance_cursors(conn, [r["id"] for r in behind], upto)
    DELIVERIES_PLANNED.inc(len(ids))
    return ids


async def enqueue_deliveries(pool: asyncpg.Pool, send: Send, **context: Any) -> int:
    """After a commit: plan and send the deliveries of the changes committed so far.

    Never raises: the commit stands whatever happens here, and the sweep plans or sends again
    whatever this missed. Returns the number of deliveries sent.
    """
    try:
        ids = await plan_deliveries(pool)
        await send_all(send, ids)
    except Exception as e:
        log.warning("webhook_planning_failed", error=f"{type(e).__name__}: {e}", **context)
        return 0
    if ids:
        log.info("webhook_deliveries_enqueued", deliveries=len(ids), **context)
    return len(ids)


async def replay(pool: asyncpg.Pool, send: Send, subscription_id: int, since_seq: int) -> Replay | None:
    """Deliver again every matching change after since_seq (up to the subscription's cursor; later
    ones are planned as usual), as new deliveries with webhook-ids of their own. None when there
    is no such subscription."""
    async with pool.acquire() as conn, conn.transaction():
        await db.lock_planner(conn)
        sub = await db.start_replay(conn, subscription_id)
        if sub is None:
            return None
        if sub["status"] != SubscriptionStatus.ACTIVE:
            raise BadRequest("the subscription is disabled; enable it before replaying", [("id", "disabled")])
        cursor = _Cursor(subscription_id, since_seq, Filters.of(sub["providers"], sub["kinds"], sub["fields"]))
        upto = sub["cursor_seq"]
        ids = await _plan_range(conn, [cursor], upto, sub["generation"]) if since_seq < upto else []
    await send_all(send, ids)
    log.info("webhook_replay", subscription_id=subscription_id, since_seq=since_seq, deliveries=len(ids))
    return Replay(subscription_id=subscription_id, since_seq=since_seq, through_seq=upto, deliveries=len(ids))


async def sweep_deliveries(pool: asyncpg.Pool, send: Send, *, idle_seconds: float) -> int:
    """The scheduler's sweep: plan what a crash left unplanned, and send again the pending
    deliveries that no worker holds and nothing has touched for idle_seconds past their time (a
    message lost with Redis, say; the actor is idempotent, so one that was only slow does no harm).
    Returns how many were sent again."""
    await enqueue_deliveries(pool, send, by="sweep")
    ids = await db.stalled_deliveries(pool, idle_seconds, SWEEP_LIMIT)
    await send_all(send, ids)
    if ids:
        log.warning("webhook_deliveries_resent", deliveries=len(ids))
    return len(ids)
