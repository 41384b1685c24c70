"""Whole-catalog documents built again ahead of the request after the catalog changes.

A whole-catalog document (/api.json, the LiteLLM export, ... at any slice) is built once per
catalog version through the response cache; at 100,000 models that takes seconds, which the
first request after a change would wait. Each web process remembers the documents asked for
(the most recent MAX_WANTED keys, each with the build its handler made) and, when a change drops
one that a request used since it was last built here, builds it again in the background once the
catalog has been quiet for DEBOUNCE seconds (a refresh commits once per provider: one rebuild
after the burst, not one per commit). The build is the cache's own: a request arriving meanwhile
waits for it; one arriving before the debounce ends builds it as before, and the rebuild then finds
it built. One document at a time, its CPU-bound part in a thread as on a request. A document
nobody read since it was built here is not built again (at most one unused build each), nor is
one evicted for space (no longer held, so no change drops it); `at=` answers never change and are
not remembered. A failed build is logged and left to the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import structlog
from prometheus_client import Counter

from services.api.cache import ResponseCache
from services.api.compression import IDENTITY

log = structlog.get_logger(__name__)

PREBUILDS = Counter(
    "modelmeta_documents_prebuilt_total",
    "Whole-catalog documents built again after a change, ahead of any request, by outcome",
    ["outcome"],
)
_BUILT, _PRESENT, _DISCARDED, _FAILED = (PREBUILDS.labels(o) for o in ("built", "present", "discarded", "failed"))
#: Seconds the catalog must stay unchanged before the documents it dropped are built again.
DEBOUNCE: Final = 1.5
#: How many documents (keys) a process remembers, the least recently asked for out first.
MAX_WANTED: Final = 32
#: How many request spellings (raw path and query) of one document are remembered.
MAX_ALIASES: Final = 8


@dataclass
class Wanted:
    """A document asked for: how to build it, and whether a request used it since it was built here."""

    tags: frozenset[str]
    build: Callable[[], Awaitable[bytes]]
    aliases: set[str] = field(default_factory=set)
    used: bool = True
    asks: int = 0  # requests that reached it (through the cache's get_or_build)
    codings: set[str] = field(default_factory=set)  # the compressed representations requests had made


class Prebuilder:
    """The cache's watcher (services.api.cache.Watcher) that builds dropped documents again."""

    def __init__(self, cache: ResponseCache, debounce: float = DEBOUNCE, max_wanted: int = MAX_WANTED) -> None:
        self.cache = cache
        self.debounce = debounce
        self.max_wanted = max_wanted
        self.wanted: OrderedDict[str, Wanted] = OrderedDict()
        self.pending: dict[str, None] = {}  # keys to build again, in order (an ordered set)
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.build_seconds = 0.0  # what the last build took

    def asked(self, key: str, alias: str | None, tags: frozenset[str], build: Callable[[], Awaitable[bytes]]) -> None:
        wanted = self.wanted.get(key)
        if wanted is None:
            wanted = self.wanted[key] = Wanted(tags, build)
            while len(self.wanted) > self.max_wanted:
                self.wanted.popitem(last=False)
        wanted.tags, wanted.build, wanted.used = tags, build, True
        wanted.asks += 1
        if alias is not None and len(wanted.aliases) < MAX_ALIASES:
            wanted.aliases.add(alias)
        self.wanted.move_to_end(key)

    def dropped(self, doomed: frozenset[str] | None, stale: dict[str, tuple[str, ...]]) -> None:
        if not self.cache.enabled or not self.wanted:
            return
        for key, wanted in self.wanted.items():
            held = [stale[k] for k in (key, *wanted.aliases) if k in stale]
            # One being built is built again whatever the change: the cache does not keep a build
            # that a drop overtook.
            building = self.cache.building(key)
            if held and wanted.used and (doomed is None or wanted.tags & doomed or building):
                self.pending[key] = None
                wanted.codings.update(c for codings in held for c in codings if c != IDENTITY)
        if self.pending:  # the catalog is not quiet yet: wait again
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(self._wait(), self._quiet)

    def _wait(self) -> float:
        """The quiet the catalog must keep: the debounce, or as long as the last build took when
        that is longer (a refresh whose commits are further apart than the debounce would otherwise
        have a document built, and thrown away, between each two)."""
        return max(self.debounce, self.build_seconds)

    def _quiet(self) -> None:
        self._timer = None
        if self._task is not None and not self._task.done():  # still building for the last change
            self._timer = asyncio.get_running_loop().call_later(self._wait(), self._quiet)
            return
        self._task = asyncio.create_task(self._rebuild())

    async def _rebuild(self) -> None:
        """Build the pending documents one at a time, until none is left or the catalog changes."""
        while self.pending and self._timer is None:
            key = next(iter(self.pending))
            del self.pending[key]
            wanted = self.wanted.get(key)
            if wanted is not None:
                await self._one(key, wanted)

    async def _one(self, key: str, wanted: Wanted) -> None:
        asks, started = wanted.asks, time.monotonic()
        try:
            entry = await self.cache.prebuild(key, wanted.tags, wanted.build)
            if entry is not None and entry.keys and entry.compressible:
                for coding in sorted(wanted.codings):  # as the requests before asked for it
                    await self.cache.representation(entry, coding)
        except Exception as e:
            _FAILED.inc()
            log.warning("document_prebuild_failed", key=key, error=f"{type(e).__name__}: {e}")
            return
        if entry is not None:
            self.build_seconds = time.monotonic() - started
        if entry is None:
            _PRESENT.inc()  # a request built it (or is building it) first
        elif entry.keys:
            wanted.used = wanted.asks != asks  # until a request reads this build (or one waited for it)
            _BUILT.inc()
            log.info("document_prebuilt", key=key, catalog_version=entry.version, codings=sorted(entry.reps))
        else:
            _DISCARDED.inc()  # the catalog changed during the build: pending again

    async def close(self) -> None:
        """Stop: no timer, and no build left running."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
