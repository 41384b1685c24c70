"""The scheduler process: enqueues a refresh per slot while it holds the Redis leader lock.

Several may run; one leads. The lock is a redis-py Lock with a short lease that the leader
renews every tick, so a standby takes over within LEASE seconds of the leader dying. Each slot is
claimed with SET NX, so a failover never enqueues two refreshes for one slot. The scheduler only
enqueues, through the Sender it is handed. With AUTO_REFRESH off it enqueues no refresh, but still
leads, publishes its state and sweeps stalled runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
import uuid

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from shared.config import Settings
from shared.db import runs
from shared.enums import Trigger
from shared.refresh import request_refresh
from shared.resources import RefreshContext, close_context, open_context
from shared.schedule import ScheduleState, claim_slot, slot_at, write_state
from shared.sender import Sender
from shared.stalled import sweep_stalled_runs
from shared.webhooks.outbox import sweep_deliveries

log = structlog.get_logger(__name__)

LEASE = 5.0
TICK = 1.0
SWEEP_EVERY = 5.0


async def enqueue_refresh(pool: asyncpg.Pool, sender: Sender) -> int:
    run, created = await request_refresh(pool, trigger=Trigger.SCHEDULER)
    if created:
        await asyncio.to_thread(sender.plan_refresh, run["id"])
    log.info("refresh_enqueued", run_id=run["id"], coalesced=not created)
    return int(run["id"])


async def scheduler(settings: Settings, sender: Sender, stop: asyncio.Event) -> None:
    identity = f"{socket.gethostname()}:{uuid.uuid4().hex[:6]}"
    ctx = await open_context(settings, client_name="scheduler")
    redis, pool = ctx.redis, ctx.pool
    lock = Lock(redis, f"{settings.redis_prefix}:scheduler:leader", timeout=LEASE)
    leading = False
    cold_start = True
    next_sweep = 0.0
    log.info(
        "scheduler_started", identity=identity, interval=settings.refresh_interval, auto_refresh=settings.auto_refresh
    )
    try:
        while not stop.is_set():
            try:
                if not leading:
                    leading = await lock.acquire(blocking=False, token=identity)
                    if leading:
                        log.info("scheduler_leading", identity=identity)
                else:
                    await lock.reacquire()
                if leading and await tick(settings, sender, redis, pool, identity, cold_start=cold_start):
                    cold_start = False
                if leading and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_EVERY
                    await sweep(ctx, sender)
            except LockError:
                log.warning("scheduler_lost_lead", identity=identity)
                leading = False
            except Exception as e:  # Redis or PostgreSQL away for a moment: try again next tick
                log.warning("scheduler_tick_failed", error=f"{type(e).__name__}: {e}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK)
    finally:
        if leading:
            with contextlib.suppress(LockError, RedisError):
                await lock.release()
        await close_context(ctx)
        log.info("scheduler_stopped", identity=identity)


async def sweep(ctx: RefreshContext, sender: Sender) -> None:
    """Resend the work of runs that stopped making progress, or close them (the leader only)."""
    await sweep_stalled_runs(
        ctx, idle_seconds=ctx.settings.stale_run_after, send_plan=sender.plan_refresh, send_sync=sender.sync_provider
    )
    await sweep_deliveries(ctx.pool, sender.deliver_changes, idle_seconds=ctx.settings.stale_run_after)


async def tick(
    settings: Settings, sender: Sender, redis: Redis, pool: asyncpg.Pool, identity: str, *, cold_start: bool
) -> bool:
    """Enqueue this slot's refresh if it is due and unclaimed; True once the slot has been dealt with.

    With AUTO_REFRESH off, nothing is due: the state says so (no next run) and nothing is enqueued.
    """
    interval = settings.refresh_interval
    if not settings.auto_refresh:
        await write_state(redis, settings.redis_prefix, ScheduleState(interval, None, identity))
        return False
    now = time.time()
    slot = slot_at(now, interval)
    handled = False
    next_run = slot.due
    if now >= slot.due:
        if await claim_slot(redis, settings.redis_prefix, slot, interval):
            last = await runs.last_success_epoch(pool)
            # At start-up, a refresh only if the catalog is older than the interval; afterwards, one
            # per slot unless a refresh already succeeded within this slot (an operator's, say).
            if last is None or (now - last >= interval if cold_start else last < slot.start):
                await enqueue_refresh(pool, sender)
            else:
                log.info("slot_skipped_fresh", slot=slot.index, last_success_age_s=round(now - last))
        handled = True
        next_run = slot_at(slot.start + interval, interval).due
    await write_state(redis, settings.redis_prefix, ScheduleState(interval, next_run, identity))
    return handled


def run_scheduler(settings: Settings) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sender = Sender.from_settings(settings)
        try:
            await scheduler(settings, sender, stop)
        finally:
            sender.close()

    asyncio.run(main())
    return 0
