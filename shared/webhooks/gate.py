"""At most N requests in flight per receiver host, across every worker: a lease set in Redis.

Each holder is a member of a sorted set scored by when its lease ends, so a holder that died
frees its slot when the lease runs out. Time comes from the Redis server.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from shared.errors import RateLimited

# KEYS[1] holders; ARGV[1] limit, ARGV[2] lease ms, ARGV[3] member. 0 when admitted, else ms to wait.
_ENTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.min(50, tonumber(first[2]) - now))
"""


class ConcurrencyGate:
    """Admits at most `limit` holders per host at a time, each for at most `lease` seconds."""

    def __init__(self, redis: Redis, prefix: str, limit: int, lease: float, *, max_wait: float = 5.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.lease_ms = int(lease * 1000)
        self.max_wait = max_wait
        self._enter = redis.register_script(_ENTER)

    def _key(self, host: str) -> str:
        return f"{self.prefix}:webhooks:inflight:{host}"

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        """A slot for one request to host; RateLimited when none frees up within max_wait."""
        member, started = uuid.uuid4().hex, time.monotonic()
        while True:
            wait = int(await self._enter(keys=[self._key(host)], args=[self.limit, self.lease_ms, member])) / 1000
            if wait == 0:
                break
            if time.monotonic() - started + wait > self.max_wait:
                raise RateLimited(host, 1.0 + random.uniform(0, 1))
            await asyncio.sleep(wait + random.uniform(0, 0.01))
        try:
            yield
        finally:
            await self.redis.zrem(self._key(host), member)
