"""Each web process's response cache, kept coherent with the catalog by invalidation events, and
bounded in bytes.

Entries are encoded response bodies keyed by route and normalized query (and by the raw path and
query of the requests that asked for them, so that a repeated request is a dictionary lookup),
tagged with the providers they depend on ("*" for anything that spans providers). Each entry keeps
its representations (identity, and each content coding once a request asked for it) with their
headers, built once. An event drops the entries of its providers; a version gap, a pub/sub
reconnect, or a catalog version seen in PostgreSQL that no event announced drops everything; a TTL
bounds the age of any entry but a lasting one (a whole-catalog document: it changes only with the
catalog). Every representation and every key counts towards `max_bytes`; past it the least recently
used keys go first, and an entry over a quarter of it is served but not kept. A lasting entry too
large to keep as it is (a whole-catalog document at 100,000 models: 50 MB) is kept packed: only its
compressed representations, counted as such, the zstd one made as it is built and an identity
answer decompressed from it for each request that accepts no coding. A watcher (services/api/
prebuild.py) hears of the lasting entries asked for and of the keys each change drops, to build the
documents again ahead of the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, Final, Protocol

import asyncpg
import structlog
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from services.api.compression import COMPRESSORS, IDENTITY, MIN_SIZE, THREADED_SIZE, unpack
from shared import events
from shared.db.catalog_writes import catalog_version
from shared.metrics import INVALIDATIONS
from shared.retry import INVALIDATION_LISTENER

log = structlog.get_logger(__name__)

CACHE_EVENTS = Counter("modelmeta_cache_events_total", "Response cache lookups and drops", ["event"])
CACHE_BYTES = Gauge("modelmeta_cache_bytes", "Bytes the response cache holds (representations and keys)")
CACHE_EVICTIONS = Counter("modelmeta_cache_evictions_total", "Cache keys evicted to stay under CACHE_MAX_BYTES")
_HIT, _MISS = CACHE_EVENTS.labels("hit"), CACHE_EVENTS.labels("miss")
ALL = "*"
CACHED_FOR = "public, max-age=15"
#: Cache-Control of an answer about a past catalog (`at=`): it never changes.
IMMUTABLE = "public, max-age=86400, immutable"
DEFAULT_MAX_BYTES: Final = 128 * 1024 * 1024
#: What Python spends around a stored body and around a key (objects, dict slots, headers).
ENTRY_OVERHEAD: Final = 600
KEY_OVERHEAD: Final = 120
#: An entry whose representations come to more than max_bytes // SHARE is served but not kept.
SHARE: Final = 4
#: The coding a packed entry is kept in first: fast to decompress for identity answers.
PACKED_CODING: Final = "zstd"


class Representation:
    """One representation of an entry: its body and the headers of its 200 and its 304."""

    __slots__ = ("body", "etag", "headers", "not_modified")

    def __init__(self, body: bytes, etag: str, version: int, coding: str, cache_control: str = CACHED_FOR) -> None:
        self.body = body
        self.etag = etag
        self.not_modified = {
            "ETag": etag,
            "X-Catalog-Version": str(version),
            "Cache-Control": cache_control,
            "Vary": "Accept-Encoding",
            "Access-Control-Allow-Origin": "*",
        }
        self.headers = {**self.not_modified, "Content-Type": "application/json"}
        if coding != IDENTITY:
            self.headers["Content-Encoding"] = coding


class Entry:
    """A cached answer: its representations by coding, the keys it is held under, its size."""

    __slots__ = (
        "building",
        "cache_control",
        "compressible",
        "digest",
        "expires",
        "keys",
        "packed",
        "reps",
        "size",
        "tags",
        "version",
    )

    def __init__(
        self, body: bytes, version: int, tags: frozenset[str], expires: float, cache_control: str = CACHED_FOR
    ) -> None:
        self.digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        self.version = version
        self.cache_control = cache_control
        self.tags = tags
        self.expires = expires
        self.reps: dict[str, Representation] = {
            IDENTITY: Representation(body, f'"{self.digest}"', version, IDENTITY, cache_control)
        }
        self.size = len(body) + ENTRY_OVERHEAD
        self.compressible = len(body) > MIN_SIZE
        self.keys: list[str] = []  # the cache keys it is held under (none: not held)
        self.building: dict[str, asyncio.Future[Representation]] = {}
        self.packed = False  # only compressed representations are kept (PACKED_CODING among them)

    def pack(self) -> None:
        """Keep the body compressed only (CPU-bound: in a thread for a large body)."""
        body = self.reps[IDENTITY].body
        self.reps = {PACKED_CODING: self._compressed(PACKED_CODING, COMPRESSORS[PACKED_CODING](body))}
        self.size = len(self.reps[PACKED_CODING].body) + ENTRY_OVERHEAD
        self.packed = True

    def _compressed(self, coding: str, packed: bytes) -> Representation:
        return Representation(packed, f'"{self.digest}-{coding}"', self.version, coding, self.cache_control)

    @property
    def body(self) -> bytes:
        """The identity body (decompressed, for a packed entry: a whole-catalog document)."""
        rep = self.reps.get(IDENTITY)
        return rep.body if rep is not None else unpack(PACKED_CODING, self.reps[PACKED_CODING].body)

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


def _key_size(key: str) -> int:
    return len(key) + KEY_OVERHEAD


def _entry(args: tuple[bytes, int, frozenset[str], float, str], pack: bool) -> Entry:
    """A new entry of a large body (digested, and packed when asked), in a thread."""
    entry = Entry(*args)
    if pack:
        entry.pack()
    return entry


class Watcher(Protocol):
    """Told which whole-catalog documents are asked for and which keys a change dropped
    (services/api/prebuild.py builds the dropped ones again ahead of the next request)."""

    def asked(self, key: str, alias: str | None, tags: frozenset[str], build: Callable[[], Awaitable[bytes]]) -> None:
        """A request reached the entry of a lasting answer about the current catalog."""

    def dropped(self, doomed: frozenset[str] | None, stale: dict[str, tuple[str, ...]]) -> None:
        """The catalog changed: these keys (held, or being built) are stale, each with the codings
        its entry held; doomed: the tags dropped (None: everything)."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared build's failure seen (every waiter re-raises it; none may be left)."""
    if not future.cancelled():
        future.exception()


class ResponseCache:
    """Encoded responses by key, dropped by tag, by version gap or by age, bounded in bytes."""

    def __init__(self, ttl: float, max_bytes: int = DEFAULT_MAX_BYTES, enabled: bool = True) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // SHARE
        self.enabled = enabled
        self.entries: OrderedDict[str, Entry] = OrderedDict()  # least recently used first
        self.bytes = 0
        self.evictions = 0
        self.version = 0  # the catalog version this process knows of
        self.epoch = 0  # bumped on every drop, so a response built across a drop is not stored
        self._building: dict[str, asyncio.Future[Entry]] = {}
        self.watcher: Watcher | None = None  # told of whole-catalog documents asked for and dropped

    def building(self, key: str) -> bool:
        """Whether the entry under `key` is being built now."""
        return key in self._building

    def lookup(self, key: str) -> Entry | None:
        """The live entry under this key, if any: the whole cost of a hit."""
        entry = self.entries.get(key)
        if entry is not None and entry.expires > time.monotonic():
            self.entries.move_to_end(key)
            _HIT.inc()
            return entry
        return None

    async def get_or_build(
        self,
        key: str,
        tags: frozenset[str],
        build: Callable[[], Awaitable[bytes]],
        *,
        alias: str | None = None,
        lasting: bool = False,
        version: int | None = None,
        immutable: bool = False,
    ) -> Entry:
        """The entry under `key`, built on a miss (once, however many requests ask for it at the
        same time); stored under `alias` too (the request's raw path and query, so that the next
        identical request is found before its query is parsed). `version`: the catalog version the body
        is built from when it is not the current one (a past catalog, `at=`); `immutable`: the body never
        changes (an answer about a past catalog), and Cache-Control says so."""
        if lasting and version is None and self.watcher is not None:
            self.watcher.asked(key, alias, tags, build)
        entry = self.lookup(key)
        if entry is None:
            pending = self._building.get(key)
            if pending is not None:
                entry = await asyncio.shield(pending)
            else:
                _MISS.inc()
                entry = await self._build(key, tags, build, lasting, version, immutable)
        if alias is not None and alias != key and entry.keys:
            self._store(alias, entry)
        return entry

    async def _build(
        self,
        key: str,
        tags: frozenset[str],
        build: Callable[[], Awaitable[bytes]],
        lasting: bool,
        built_from: int | None = None,
        immutable: bool = False,
    ) -> Entry:
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._building[key] = future
        epoch, version = self.epoch, self.version
        try:
            body = await build()
            args = (
                body,
                version if built_from is None else built_from,
                tags,
                math.inf if lasting else time.monotonic() + self.ttl,
                IMMUTABLE if immutable else CACHED_FOR,
            )
            pack = lasting and self.enabled and len(body) + ENTRY_OVERHEAD + _key_size(key) > self.max_entry
            entry = await asyncio.to_thread(_entry, args, pack) if pack or len(body) > THREADED_SIZE else Entry(*args)
        except BaseException as e:
            future.set_exception(e)
            raise
        finally:
            self._building.pop(key, None)
        future.set_result(entry)
        if self.enabled and epoch == self.epoch:
            self._store(key, entry)
        return entry

    async def prebuild(self, key: str, tags: frozenset[str], build: Callable[[], Awaitable[bytes]]) -> Entry | None:
        """Build a lasting entry of the current catalog ahead of any request (requests that ask
        meanwhile wait for this build, as for any other); None when it is held or being built
        already. The entry is not kept (no `keys`) when the catalog changed during the build."""
        if key in self.entries or key in self._building:
            return None
        return await self._build(key, tags, build, lasting=True)

    async def representation(self, entry: Entry, coding: str) -> Representation:
        """The entry in this coding, compressed the first time it is asked for (in a thread when
        large; once, however many requests ask at the same time) and kept with the entry."""
        rep = entry.reps.get(coding)
        if rep is not None:
            return rep
        pending = entry.building.get(coding)
        if pending is not None:
            return await asyncio.shield(pending)
        if coding == IDENTITY:  # a packed entry: decompressed for this request, not kept
            body = await asyncio.to_thread(lambda: entry.body)
            return Representation(body, entry.etag, entry.version, IDENTITY, entry.cache_control)
        future: asyncio.Future[Representation] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        entry.building[coding] = future
        try:
            compress = COMPRESSORS[coding]
            if entry.packed:
                packed = await asyncio.to_thread(lambda: compress(entry.body))
            else:
                body = entry.body
                packed = await asyncio.to_thread(compress, body) if len(body) > THREADED_SIZE else compress(body)
            rep = entry._compressed(coding, packed)
        except BaseException as e:
            future.set_exception(e)
            raise
        finally:
            entry.building.pop(coding, None)
        future.set_result(rep)
        self._keep(entry, coding, rep)
        return rep

    def _keep(self, entry: Entry, coding: str, rep: Representation) -> None:
        """Add a representation to its entry when that keeps the entry within its share."""
        size = len(rep.body) + KEY_OVERHEAD
        if entry.size + size > self.max_entry:
            return
        entry.reps[coding] = rep
        entry.size += size
        if entry.keys:
            self.bytes += size
            self._evict()

    def _store(self, key: str, entry: Entry) -> None:
        if not self.enabled or entry.size + _key_size(key) > self.max_entry:
            return
        old = self.entries.pop(key, None)
        if old is not None:
            self._unlink(key, old)
        if not entry.keys:
            self.bytes += entry.size
        entry.keys.append(key)
        self.entries[key] = entry
        self.bytes += _key_size(key)
        self._evict()

    def _unlink(self, key: str, entry: Entry) -> None:
        """Account for a key just taken out of `entries`."""
        self.bytes -= _key_size(key)
        entry.keys.remove(key)
        if not entry.keys:
            self.bytes -= entry.size

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self.entries:
            key, entry = self.entries.popitem(last=False)
            self._unlink(key, entry)
            self.evictions += 1
            CACHE_EVICTIONS.inc()
        CACHE_BYTES.set(self.bytes)

    def drop(self, providers: list[str]) -> None:
        self.epoch += 1
        doomed = frozenset({ALL, *providers})
        stale = {k: tuple(e.reps) for k, e in self.entries.items() if e.tags & doomed}
        for key in stale:
            self._unlink(key, self.entries.pop(key))
        CACHE_BYTES.set(self.bytes)
        CACHE_EVENTS.labels("drop_tagged").inc()
        if self.watcher is not None:
            self.watcher.dropped(doomed, {**dict.fromkeys(self._building, ()), **stale})

    def clear(self, reason: str) -> None:
        self.epoch += 1
        stale = {**dict.fromkeys(self._building, ()), **{k: tuple(e.reps) for k, e in self.entries.items()}}
        for entry in self.entries.values():
            entry.keys.clear()
        self.entries.clear()
        self.bytes = 0
        CACHE_BYTES.set(0)
        CACHE_EVENTS.labels("drop_all").inc()
        log.info("cache_cleared", reason=reason)
        if self.watcher is not None:
            self.watcher.dropped(None, stale)

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
    on sort, cursor or limit, so walking the pages of a list counts it once, and requests for the
    same filter that arrive while it is being counted wait for that count rather than count again
    (after a new catalog version, every popular search is asked for at once). A total of a past
    catalog (`at=`: its key names the version) never changes, so it outlives new catalog versions.
    Bounded in bytes like the cache (least recently used out first), current and past apart."""

    def __init__(self, cache: ResponseCache, max_bytes: int | None = None) -> None:
        self.cache = cache
        self.max_bytes = max_bytes if max_bytes is not None else cache.max_bytes // 16
        self.version = -1
        self.totals: OrderedDict[str, int] = OrderedDict()
        self.bytes = 0
        self.past: OrderedDict[str, int] = OrderedDict()  # totals of past catalogs, by filter and version
        self.past_bytes = 0
        self._counting: dict[tuple[str, int], asyncio.Future[int | None]] = {}  # by filter and version

    async def known(self, key: str) -> int | None:
        """The total of this filter if it is known, or once the request counting it has counted it
        (None: nobody is counting it, or that count failed: count it)."""
        total = self.get(key)
        pending = self._counting.get((key, self.cache.version)) if total is None else None
        return total if pending is None else await asyncio.shield(pending)

    @contextlib.contextmanager
    def counting(self, key: str) -> Iterator[Callable[[int], None]]:
        """While this request counts a filter's total, others wait for it (`known`); call the
        function given with the total (not calling it, or an exception, lets them count it)."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        slot = (key, self.cache.version)
        first = self._counting.setdefault(slot, future) is future
        try:
            yield lambda total: None if future.done() else future.set_result(total)
        finally:
            if not future.done():
                future.set_result(None)
            if first:
                del self._counting[slot]

    def get(self, key: str) -> int | None:
        total = self.past.get(key)
        if total is not None:
            self.past.move_to_end(key)
            return total
        if self.version != self.cache.version:
            self.version, self.totals, self.bytes = self.cache.version, OrderedDict(), 0
        total = self.totals.get(key)
        if total is not None:
            self.totals.move_to_end(key)
        return total

    def put(self, key: str, version: int | None, total: int) -> None:
        """Keep a total counted at this catalog version (None: of a past catalog, kept for good)."""
        if version is None:
            if key not in self.past:
                self.past[key] = total
                self.past_bytes = _bounded(self.past, self.past_bytes + _key_size(key), self.max_bytes)
        elif version == self.cache.version == self.version and key not in self.totals:
            self.totals[key] = total
            self.bytes = _bounded(self.totals, self.bytes + _key_size(key), self.max_bytes)


def _bounded(totals: OrderedDict[str, int], size: int, max_bytes: int) -> int:
    """Drop the least recently used totals until their keys take at most max_bytes; their size then."""
    while size > max_bytes and totals:
        old, _ = totals.popitem(last=False)
        size -= _key_size(old)
    return size


class PastInstants:
    """Past instants (`at=`) already resolved to the catalog version in force then and when it was
    committed. Such an answer never changes: a later catalog version is never committed before the
    newest one, so once a version after the instant exists, every version to come is after it too.
    Keeps asking PostgreSQL out of each `at=` request. Bounded (least recently used out first)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.known: OrderedDict[datetime, tuple[int, datetime | None]] = OrderedDict()

    def get(self, at: datetime) -> tuple[int, datetime | None] | None:
        found = self.known.get(at)
        if found is not None:
            self.known.move_to_end(at)
        return found

    def put(self, at: datetime, version: int, version_at: datetime | None) -> None:
        self.known[at] = (version, version_at)
        self.known.move_to_end(at)
        while len(self.known) > self.size:
            self.known.popitem(last=False)
