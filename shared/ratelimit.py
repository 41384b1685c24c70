"""One request budget per upstream host, kept in Redis and shared by every worker everywhere.

A sliding-window log in a sorted set, updated atomically by one Lua script that also honours a
per-host pause (set when the upstream answers 429). Time comes from the Redis server, so hosts
with skewed clocks still share one window.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from shared.config import RateLimit
from shared.errors import RateLimited
from shared.metrics import RATELIMIT_DEFERRED, RATELIMIT_PAUSES, RATELIMIT_WAIT

log = structlog.get_logger(__name__)

# KEYS[1] window (zset of grant times), KEYS[2] pause-until (ms)
# ARGV[1] budget, ARGV[2] window length ms, ARGV[3] unique member
# Returns 0 when a slot was granted, else the milliseconds to wait before asking again.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return paused - now end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now + 1)
"""

# The same window, asked once and never waited on (a web request is answered or refused now).
# KEYS[1] window; ARGV[1] budget, ARGV[2] window length ms, ARGV[3] unique member
# Returns {granted (1/0), slots left after this request, ms until the oldest grant leaves}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local budget, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local granted = 0
if used < budget then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  used = used + 1
  granted = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {granted, budget - used, math.max(1, tonumber(oldest[2]) + window - now + 1)}
"""

# KEYS[1] pause-until; ARGV[1] pause length ms. Only ever extends a pause.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untl = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  redis.call('SET', KEYS[1], untl, 'PX', tonumber(ARGV[1]) + 1000)
  return untl
end
return cur
"""


@dataclass(frozen=True, slots=True)
class Slot:
    """One answer of RateLimiter.take: granted or not, what is left, and when the oldest grant of
    the window leaves it (the wait before asking again, when refused)."""

    granted: bool
    remaining: int
    reset: float


class RateLimiter:
    """Grants request slots for upstream hosts within one shared budget per host."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        limit: RateLimit,
        *,
        max_wait: float = 5.0,
        margin: float = 0.05,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.max_wait = max_wait
        # The window is kept a little longer than the budget's period so that the jitter between
        # a grant and the request reaching the upstream cannot squeeze N+1 requests into a period.
        self.window_ms = int(limit.period * 1000 * (1 + margin))
        self._acquire = redis.register_script(_ACQUIRE)
        self._pause = redis.register_script(_PAUSE)
        self._take = redis.register_script(_TAKE)

    def _keys(self, host: str) -> list[str]:
        return [f"{self.prefix}:ratelimit:{host}:window", f"{self.prefix}:ratelimit:{host}:paused"]

    async def try_acquire(self, host: str) -> float:
        """Take a slot now (0.0) or return the seconds to wait before one can be had."""
        wait_ms = await self._acquire(keys=self._keys(host), args=[self.limit.count, self.window_ms, uuid.uuid4().hex])
        return int(wait_ms) / 1000

    async def take(self, key: str) -> Slot:
        """Take a slot of `key`'s window now or be refused, with the counts the caller reports;
        never waits (the web process answers 429 instead). Pauses do not apply."""
        granted, remaining, reset_ms = await self._take(
            keys=self._keys(key)[:1], args=[self.limit.count, self.window_ms, uuid.uuid4().hex]
        )
        return Slot(bool(granted), int(remaining), int(reset_ms) / 1000)

    async def acquire(self, host: str) -> float:
        """Wait for a slot without blocking the event loop; return the seconds waited.

        A wait longer than max_wait raises RateLimited, for the caller to retry later (in an actor
        that becomes a dramatiq.Retry with that delay) rather than hold a worker.
        """
        started = time.monotonic()
        while True:
            wait = await self.try_acquire(host)
            if wait == 0:
                waited = time.monotonic() - started
                RATELIMIT_WAIT.labels(host).observe(waited)
                if waited > 0.001:
                    log.debug("ratelimit_waited", host=host, waited_s=round(waited, 3))
                return waited
            if time.monotonic() - started + wait > self.max_wait:
                RATELIMIT_DEFERRED.labels(host).inc()
                raise RateLimited(host, wait)
            await asyncio.sleep(wait + random.uniform(0, 0.01))

    async def pause(self, host: str, seconds: float) -> None:
        """Stop every acquirer of host for `seconds` (an upstream 429 with Retry-After)."""
        await self._pause(keys=self._keys(host)[1:], args=[max(1, int(seconds * 1000))])
        RATELIMIT_PAUSES.labels(host).inc()
        log.warning("ratelimit_paused", host=host, seconds=seconds)
