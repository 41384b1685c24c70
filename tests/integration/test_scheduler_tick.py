"""One scheduler tick against real PostgreSQL and Redis: it enqueues when a slot is due, and
never with automatic refreshes off."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
from redis.asyncio import Redis

from services.scheduler.main import tick
from shared.config import Settings
from shared.schedule import read_state
from tests.support import pipeline


class RecordingSender:
    """Stands in for shared.sender.Sender: records what would be enqueued."""

    def __init__(self) -> None:
        self.plans: list[int] = []

    def plan_refresh(self, run_id: int) -> None:
        self.plans.append(run_id)


async def _tick_until_handled(settings: Settings, sender: RecordingSender, redis: Redis, pool: asyncpg.Pool) -> bool:
    for _ in range(40):  # a 1 s slot is due within its first 0.1 s
        if await tick(settings, sender, redis, pool, "test:1", cold_start=True):  # type: ignore[arg-type]
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_due_slot_enqueues_one_refresh(settings: Settings) -> None:
    settings = dataclasses.replace(settings, refresh_interval=1.0)
    sender = RecordingSender()
    async with pipeline(settings) as ctx:
        assert await _tick_until_handled(settings, sender, ctx.redis, ctx.pool)
        runs = await ctx.pool.fetch("SELECT id, trigger FROM refresh_runs")
        assert [(r["id"], r["trigger"]) for r in runs] == [(sender.plans[0], "scheduler")]
        state = await read_state(ctx.redis, settings.redis_prefix)
        assert state is not None
        assert state.next_run_at is not None
        assert state.leader == "test:1"


async def test_auto_refresh_off_enqueues_nothing_but_publishes_its_state(settings: Settings) -> None:
    settings = dataclasses.replace(settings, refresh_interval=1.0, auto_refresh=False)
    sender = RecordingSender()
    async with pipeline(settings) as ctx:
        assert not await _tick_until_handled(settings, sender, ctx.redis, ctx.pool)
        assert sender.plans == []
        assert await ctx.pool.fetchval("SELECT count(*) FROM refresh_runs") == 0
        state = await read_state(ctx.redis, settings.redis_prefix)
        assert state is not None
        assert state.next_run_at is None
        assert state.leader == "test:1"
