"""The Redis rate limiter on a real Redis, across processes."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time

import pytest
from redis.asyncio import Redis

from shared.config import RateLimit
from shared.ratelimit import RateLimiter
from tests.support import REDIS_URL, max_in_window

BUDGET = 10
DURATION = 5.0


def _acquirer_process(prefix: str, deadline: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> list[float]:
        redis = Redis.from_url(REDIS_URL)
        limiter = RateLimiter(redis, prefix, RateLimit(BUDGET, 1.0), max_wait=30)
        grants: list[float] = []

        async def acquirer() -> None:
            while True:
                await limiter.acquire("upstream.example")
                now = time.time()
                if now >= deadline:
                    return
                grants.append(now)

        await asyncio.gather(*(acquirer() for _ in range(8)))
        await redis.aclose()
        return grants

    out.put(asyncio.run(main()))


@pytest.mark.slow  # it starts two processes
def test_two_processes_share_one_budget(redis_prefix: str) -> None:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    deadline = time.time() + DURATION + 1.0
    procs = [ctx.Process(target=_acquirer_process, args=(redis_prefix, deadline, out)) for _ in range(2)]
    for p in procs:
        p.start()
    grants = out.get(timeout=60) + out.get(timeout=60)
    for p in procs:
        p.join(10)
    # Look at a steady stretch of DURATION seconds after both processes started.
    start = min(grants) + 0.5
    window = [t for t in grants if start <= t < start + DURATION]
    assert max_in_window(grants, 1.0) <= BUDGET
    assert len(window) >= 0.9 * BUDGET * DURATION, len(window)


async def test_429_pause_stops_every_acquirer(redis_prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        a = RateLimiter(redis, redis_prefix, RateLimit(100, 1.0), max_wait=10)
        b = RateLimiter(redis, redis_prefix, RateLimit(100, 1.0), max_wait=10)
        await a.acquire("h")
        await a.pause("h", 2.0)
        started = time.monotonic()
        waits = await asyncio.gather(*(x.acquire("h") for x in (a, b, a, b)))
        elapsed = time.monotonic() - started
        assert elapsed >= 1.9
        assert all(w >= 1.9 for w in waits)
        # Another host is not paused.
        assert await a.acquire("other") < 0.05
    finally:
        await redis.aclose()


async def test_long_wait_is_raised_not_slept(redis_prefix: str) -> None:
    from shared.errors import RateLimited

    redis = Redis.from_url(REDIS_URL)
    try:
        limiter = RateLimiter(redis, redis_prefix, RateLimit(1, 60.0), max_wait=1.0)
        await limiter.acquire("h")
        started = time.monotonic()
        with pytest.raises(RateLimited) as e:
            await limiter.acquire("h")
        assert e.value.delay > 50
        assert time.monotonic() - started < 0.5
    finally:
        await redis.aclose()
