"""Cache-invalidation events: what the workers publish after each commit and the web processes hear.

Redis pub/sub can drop messages, so each event carries the catalog version it produced and a
generation key holds the highest version published: a listener that sees a gap, or reconnects,
drops its whole cache, and a periodic check of the generation key catches anything missed.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
from redis.asyncio import Redis

# KEYS[1] generation key, KEYS[2] channel; ARGV[1] version, ARGV[2] payload
_PUBLISH = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('PUBLISH', KEYS[2], ARGV[2])
"""


class Invalidation(msgspec.Struct, frozen=True):
    """The catalog moved to `version`; entries tagged with these providers are stale."""

    version: int
    providers: list[str]
    run_id: int | None = None


def channel(prefix: str) -> str:
    """The pub/sub channel of invalidation events."""
    return f"{prefix}:invalidate"


def generation_key(prefix: str) -> str:
    """The key holding the highest catalog version published."""
    return f"{prefix}:catalog_version"


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Invalidation).decode


def decode(data: bytes | str) -> Invalidation:
    """Parse an event from the channel."""
    return _decode(data)


async def publish(redis: Redis, prefix: str, event: Invalidation) -> int:
    """Raise the generation and publish the event; return how many listeners got it."""
    script = redis.register_script(_PUBLISH)
    return int(await script(keys=[generation_key(prefix), channel(prefix)], args=[event.version, _encode(event)]))


# -- read-your-refresh: web processes acknowledge the catalog version their cache reflects ----

#: A web process that has not acknowledged for this long is taken as gone.
ACK_STALE_AFTER = 10.0


def acks_key(prefix: str) -> str:
    return f"{prefix}:web:acks"


async def acknowledge(redis: Redis, prefix: str, instance: str, version: int) -> None:
    """Record that this web process's cache reflects `version` (also its heartbeat)."""
    await redis.hset(acks_key(prefix), instance, _encode([version, time.time()]))


async def forget(redis: Redis, prefix: str, instance: str) -> None:
    """A web process shutting down stops being waited for."""
    await redis.hdel(acks_key(prefix), instance)


async def wait_for_acks(redis: Redis, prefix: str, version: int, within: float) -> list[str]:
    """Wait until every live web process reflects `version`; return the ones still behind."""
    deadline = time.monotonic() + within
    while True:
        behind = []
        now = time.time()
        for instance, raw in (await redis.hgetall(acks_key(prefix))).items():
            acked, at = msgspec.json.decode(raw)
            if now - at <= ACK_STALE_AFTER and acked < version:
                behind.append(instance.decode() if isinstance(instance, bytes) else str(instance))
        if not behind or time.monotonic() >= deadline:
            return behind
        await asyncio.sleep(0.01)
