"""Each web process's response cache, kept coherent with the catalog by invalidation events.

Entries are encoded response bodies keyed by route and normalized query (and by the raw path and
query of the requests that asked for them, so that a repeated request is a dictionary lookup), tagged with the providers
they depend on ("*" for anything that spans providers). An event drops the entries of its
providers; a version gap, a pub/sub reconnect, or a catalog version seen in PostgreSQL that no
event announced drops everything; a TTL bounds the age of any entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import structlog
from prometheus_client import Counter
from redis.asyncio import Redis

from shared import events
from shared.db.catalog_writes import catalog_version
from shared.metrics import INVALIDATIONS
from shared.retry import INVALIDATION_LISTENER

log = structlog.get_logger(__name__)

CACHE_EVENTS = Counter("modelmeta_cache_events_total", "Response cache lookups and drops", ["event"])
ALL = "*"


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes
    etag: str
    version: int
    tags: frozenset[str]
    expires: float


class ResponseCache:
    """Encoded responses by key, dropped by tag, by version gap or by age."""

    def __init__(self, ttl: float, max_entries: int = 20_000, enabled: bool = True) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.enabled = enabled
        self.entries: dict[str, Entry] = {}
        self.version = 0  # the catalog version this process knows of
        self.epoch = 0  # bumped on every drop, so a response built across a drop is not stored

    def lookup(self, key: str) -> Entry | None:
        """The live entry under this key, if any: the whole cost of a hit."""
        entry = self.entries.get(key) if self.enabled else None
        if entry is not None and entry.expires > time.monotonic():
            CACHE_EVENTS.labels("hit").inc()
            return entry
        return None

    async def get_or_build(
        self, key: str, tags: frozenset[str], build: Callable[[], Awaitable[bytes]], *, alias: str | None = None
    ) -> Entry:
        """The entry under `key`, built on a miss; stored under `alias` too (the request's raw path
        and query, so that the next identical request is found before its query is parsed)."""
        entry = self.lookup(key)
        if entry is None:
            CACHE_EVENTS.labels("miss").inc()
            epoch, version = self.epoch, self.version
            body = await build()
            entry = Entry(
                body,
                f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"',
                version,
                tags,
                time.monotonic() + self.ttl,
            )
            if not (self.enabled and epoch == self.epoch):
                return entry
            self._store(key, entry)
        if alias is not None and alias != key and self.enabled:
            self._store(alias, entry)
        return entry

    def _store(self, key: str, entry: Entry) -> None:
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = entry

    def drop(self, providers: list[str]) -> None:
        self.epoch += 1
        doomed = {ALL, *providers}
        for key in [k for k, e in self.entries.items() if e.tags & doomed]:
            del self.entries[key]
        CACHE_EVENTS.labels("drop_tagged").inc()

    def clear(self, reason: str) -> None:
        self.epoch += 1
        self.entries.clear()
        CACHE_EVENTS.labels("drop_all").inc()
        log.info("cache_cleared", reason=reason)

    def apply(self, event: events.Invalidation) -> None:
        """Handle an invalidation event in version order; a gap drops everything."""
        INVALIDATIONS.labels("received").inc()
        if event.version <= self.version:
            self.drop(event.providers)  # a late or repeated event: dropping again is harmless
            return
        if event.version != self.version + 1:
            INVALIDATIONS.labels("gap").inc()
            self.clear(f"version gap {self.version} -> {event.version}")
        else:
            self.drop(event.providers)
        self.version = event.version

    def saw_version(self, version: int) -> None:
        """The catalog version read from PostgreSQL; newer than we know means we missed events."""
        if version != self.version:
            if version > self.version:
                self.clear(f"catalog version {version} announced by no event (known {self.version})")
            self.version = version


async def listen(cache: ResponseCache, redis: Redis, prefix: str, instance: str, stop: asyncio.Event) -> None:
    """Follow the invalidation channel, acknowledging each version; after a (re)connect, drop everything."""
    failures = 0
    while not stop.is_set():
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(events.channel(prefix))
                cache.clear("subscribed to invalidation channel")
                failures = 0
                while not stop.is_set():
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg["type"] == "message":
                        try:
                            cache.apply(events.decode(msg["data"]))
                        except ValueError:
                            cache.clear("undecodable invalidation event")
                        await events.acknowledge(redis, prefix, instance, cache.version)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            cache.clear("invalidation channel lost")
            failures += 1
            backoff = INVALIDATION_LISTENER.delay(failures)
            log.warning("invalidation_listener_reconnecting", error=str(e), backoff_s=round(backoff, 3))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)


async def poll_version(
    cache: ResponseCache,
    pool: asyncpg.Pool,
    redis: Redis,
    prefix: str,
    instance: str,
    stop: asyncio.Event,
    every: float = 2.0,
) -> None:
    """The safety net: compare with PostgreSQL's catalog version every few seconds, and heartbeat."""
    while not stop.is_set():
        try:
            cache.saw_version(await catalog_version(pool))
        except Exception as e:  # PostgreSQL away: keep serving the cache, check again shortly
            log.warning("catalog_version_check_failed", error=f"{type(e).__name__}: {e}")
        try:
            await events.acknowledge(redis, prefix, instance, cache.version)
        except Exception as e:
            log.warning("ack_failed", error=str(e))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


class TotalsMemo:
    """List totals by filter, for the catalog version they were counted at. A total does not depend
    on sort, cursor or limit, so walking the pages of a list counts it once."""

    def __init__(self, cache: ResponseCache, max_entries: int = 10_000) -> None:
        self.cache = cache
        self.max_entries = max_entries
        self.version = -1
        self.totals: dict[str, int] = {}

    def get(self, key: str) -> int | None:
        if self.version != self.cache.version:
            self.version, self.totals = self.cache.version, {}
        return self.totals.get(key)

    def put(self, key: str, version: int, total: int) -> None:
        if version == self.cache.version == self.version:
            if len(self.totals) >= self.max_entries:
                self.totals.clear()
            self.totals[key] = total
