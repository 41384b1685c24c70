"""The change log as feeds (API.md, "Change notifications"): GET /api/v1/changes.atom (Atom 1.0)
and GET /api/v1/changes/stream (server-sent events, `id` = seq, resumed with Last-Event-ID).

Both take the filters of /api/v1/changes (its query Struct, decoded by the route) and build each
change with the one change-object builder. The stream learns of new commits from one poll of the
latest seq per process, shared by every client, and ends cleanly when the app shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
import msgspec
import structlog
from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.ratelimit import STREAMS
from shared.db import api_reads
from shared.db import webhooks as db
from shared.schemas.api import ChangeFilters, ChangesQuery, StreamHeaders, change_object
from shared.webhooks.atom import CONTENT_TYPE, atom_document

log = structlog.get_logger(__name__)

#: A comment line keeps idle streams (and the proxies between) open this often, in seconds.
HEARTBEAT = 15.0
#: How often a process looks for new changes while anyone is streaming.
POLL_EVERY = 0.2
#: Changes read per query while streaming.
STREAM_PAGE = 500
_enc = msgspec.json.Encoder()


def _since_seq(q: ChangeFilters) -> int:
    return q.since if isinstance(q.since, int) else 0


def _since_time(q: ChangeFilters) -> datetime | None:
    return q.since if isinstance(q.since, datetime) else None


async def _changes(pool: asyncpg.Pool, q: ChangeFilters, *, after: int, limit: int) -> tuple[list[Any], int | None]:
    """A page of the matching changes after `after` (and after q.since), and the next cursor.
    (Counted from the page's start: the total is not used, and a stream's count stays small.)"""
    rows, _, last = await api_reads.changes_since(
        pool,
        since_seq=max(_since_seq(q), after),
        after_seq=after,
        since_time=_since_time(q),
        providers=[p for p in q.provider if p],
        kinds=[str(k) for k in q.kind],
        limit=limit,
    )
    return rows, last


# -- Atom --------------------------------------------------------------------------------------


async def changes_atom(request: web.Request, *, query: ChangesQuery) -> web.Response:
    """Without since or cursor, the newest changes; with one, the changes after it, oldest first,
    with a `next` link while there are more (RFC 5005 paging)."""
    q, pool, base = query, request.app[keys.POOL], str(request.url.origin())
    filters = urlencode(sorted((k, v) for k, v in request.query.items() if k in ("provider", "kind")))

    async def build() -> bytes:
        next_url = None
        if q.since is None and q.cursor is None:
            providers, kinds = [p for p in q.provider if p], [str(k) for k in q.kind]
            rows = await db.latest_changes(pool, providers=providers, kinds=kinds, limit=q.limit)
        else:
            rows, last = await _changes(pool, q, after=q.cursor or 0, limit=q.limit)
            if last is not None:
                params = {**request.query, "cursor": str(last)}
                params.pop("since", None)
                next_url = f"{base}{request.path}?{urlencode(sorted(params.items()))}"
        return atom_document(
            base=base,
            self_url=str(request.url),
            json_url=f"{base}/api/v1/changes" + (f"?{filters}" if filters else ""),
            feed_key=filters,
            changes=[change_object(r) for r in rows],
            updated=await db.catalog_updated_at(pool),
            next_url=next_url,
        )

    key = f"atom:{base}{request.path}?{urlencode(sorted(request.query.items()))}"
    entry = await request.app[keys.CACHE].get_or_build(key, frozenset({ALL}), build)
    headers = {"ETag": entry.etag, "X-Catalog-Version": str(entry.version), "Cache-Control": "public, max-age=15"}
    inm = request.headers.get("If-None-Match")
    if inm and (inm.strip() == "*" or entry.etag in [t.strip() for t in inm.split(",")]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=entry.body, content_type=CONTENT_TYPE, charset="utf-8", headers=headers)


# -- server-sent events ------------------------------------------------------------------------


class ChangeNotifier:
    """The latest committed seq, polled once per process while anyone streams; streams wait on it."""

    def __init__(self, pool: asyncpg.Pool, every: float = POLL_EVERY) -> None:
        self.pool = pool
        self.every = every
        self.latest = 0
        self.listeners = 0
        self.stopping = asyncio.Event()
        self._moved = asyncio.Event()

    async def run(self) -> None:
        while not self.stopping.is_set():
            if self.listeners:
                try:
                    await self.refresh()
                except Exception as e:  # PostgreSQL away: streams stay open and catch up later
                    log.warning("change_poll_failed", error=f"{type(e).__name__}: {e}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.every)

    async def refresh(self) -> int:
        seq = await db.latest_seq(self.pool)
        if seq > self.latest:
            self.latest = seq
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()
        return self.latest

    async def wait_beyond(self, seq: int, within: float) -> None:
        """Return once the log has moved past seq, after `within` seconds, or when stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self.latest <= seq and not self.stopping.is_set():
                    await self._moved.wait()

    def stop(self) -> None:
        """End every stream (the app is shutting down)."""
        self.stopping.set()
        self._moved.set()


NOTIFIER = web.AppKey("change_notifier", ChangeNotifier)
HEARTBEAT_KEY = web.AppKey("stream_heartbeat", float)


def _start(q: ChangeFilters, headers: StreamHeaders) -> int | None:
    """Where the stream starts: after Last-Event-ID, else after since (a time: from the start of
    the log, filtered by time), else None (from now)."""
    if headers.last_event_id is not None:
        return headers.last_event_id
    if q.since is None:
        return None
    return _since_seq(q)


def _event(r: asyncpg.Record) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (r["seq"], _enc.encode(change_object(r)))


async def changes_stream(request: web.Request, *, query: ChangeFilters, headers: StreamHeaders) -> web.StreamResponse:
    """Each matching change as an event whose id is its seq: from Last-Event-ID (or since) when
    given, else from now; a comment every HEARTBEAT seconds while nothing happens. Streams are
    bounded per process and per client (WEB_MAX_STREAMS, WEB_MAX_STREAMS_PER_CLIENT)."""

    async def stream(request: web.Request) -> web.StreamResponse:
        return await _serve_stream(request, query, headers)

    return await request.app[STREAMS].serve(request, stream)


async def _serve_stream(request: web.Request, query: ChangeFilters, headers: StreamHeaders) -> web.StreamResponse:
    q, start, notifier = query, _start(query, headers), request.app[NOTIFIER]
    notifier.listeners += 1
    try:
        after = start if start is not None else await notifier.refresh()
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        await _stream(request, response, q, after)
    except ConnectionResetError:  # a write that raced the client's going away (aiohttp cancels us otherwise)
        log.debug("stream_client_gone")
    finally:
        notifier.listeners -= 1
    return response


async def _stream(request: web.Request, response: web.StreamResponse, q: ChangeFilters, after: int) -> None:
    notifier, pool, heartbeat = request.app[NOTIFIER], request.app[keys.POOL], request.app[HEARTBEAT_KEY]
    while not notifier.stopping.is_set():
        seen = notifier.latest
        rows, _ = await _changes(pool, q, after=after, limit=STREAM_PAGE)
        if rows:
            await response.write(b"".join(_event(r) for r in rows))
            after = rows[-1]["seq"]
            continue
        # Every change up to `seen` was committed before the query (seqs follow commit order), so
        # a filtered stream need not read past them again.
        after = max(after, seen)
        await notifier.wait_beyond(after, heartbeat)
        if notifier.latest <= after and not notifier.stopping.is_set():  # a quiet interval
            await response.write(b": heartbeat\n\n")


def setup_feeds(app: web.Application, *, heartbeat: float | None = None) -> None:
    """Set up the stream's notifier (the feed routes are in routes.py)."""
    app[HEARTBEAT_KEY] = heartbeat or HEARTBEAT
    app.cleanup_ctx.append(_notifier)
    app.on_shutdown.append(_stop_streams)


async def _notifier(app: web.Application) -> AsyncIterator[None]:
    notifier = ChangeNotifier(app[keys.POOL])
    app[NOTIFIER] = notifier
    task = asyncio.create_task(notifier.run())
    yield
    notifier.stop()
    await asyncio.gather(task, return_exceptions=True)


async def _stop_streams(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open requests: the streams end now, cleanly.
    if NOTIFIER in app:
        app[NOTIFIER].stop()
