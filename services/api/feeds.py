"""The change log as feeds (API.md, "Change notifications"): GET /api/v1/changes.atom (Atom 1.0)
and GET /api/v1/changes/stream (server-sent events, `id` = seq, resumed with Last-Event-ID).

Both take the filters of /api/v1/changes (lead: parse_change_query mirrors views.changes; one of
them should go when the query Structs land). The stream learns of new commits from one poll of
the latest seq per process, shared by every client, and ends cleanly when the app shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import asyncpg
import msgspec
import structlog
from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from shared.db import models as reads
from shared.db import webhooks as db
from shared.enums import ChangeKind
from shared.errors import BadRequest
from shared.webhooks.atom import CONTENT_TYPE, atom_document
from shared.webhooks.payload import change_object

log = structlog.get_logger(__name__)

#: A comment line keeps idle streams (and the proxies between) open this often, in seconds.
HEARTBEAT = 15.0
#: How often a process looks for new changes while anyone is streaming.
POLL_EVERY = 0.2
#: Changes read per query while streaming.
STREAM_PAGE = 500
_enc = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ChangeQuery:
    """The change-feed parameters: where to start (`start` is None for "from now" or "the
    newest"), which providers and kinds, and the page size."""

    start: int | None
    since_time: datetime | None
    providers: list[str]
    kinds: list[str]
    limit: int


def _since(value: str, errors: list[tuple[str, str]]) -> tuple[int, datetime | None]:
    if value.isdigit() and len(value) <= 18:
        return int(value), None
    try:
        when = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise ValueError
    except ValueError:
        errors.append(("since", f"expected a cursor or an RFC 3339 time with offset, got {value!r}"))
        return 0, None
    return 0, when


def parse_change_query(query: Mapping[str, str], allowed: frozenset[str]) -> ChangeQuery:
    """The /api/v1/changes filters that `allowed` names; BadRequest lists every bad parameter."""
    errors = [(k, "unknown parameter") for k in query if k not in allowed]
    start, since_time = None, None
    cursor = query.get("cursor")
    if cursor is not None:
        if cursor.isdigit() and len(cursor) <= 18:
            start = int(cursor)
        else:
            errors.append(("cursor", f"expected next_cursor of the previous page, got {cursor!r}"))
    if "since" in query:
        after, since_time = _since(query["since"], errors)
        start = max(start or 0, after)
    kinds = [k for k in query.get("kind", "").split(",") if k]
    if any(k not in {c.value for c in ChangeKind} for k in kinds):
        errors.append(("kind", "expected added, updated or removed"))
    limit_raw = query.get("limit", "50")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 500:
        errors.append(("limit", f"expected 1 to 500, got {limit_raw!r}"))
    if errors:
        raise BadRequest("invalid query parameters", errors)
    providers = [p for p in query.get("provider", "").split(",") if p]
    return ChangeQuery(start, since_time, providers, kinds, int(limit_raw))


# -- Atom --------------------------------------------------------------------------------------


async def changes_atom(request: web.Request) -> web.Response:
    """Without since or cursor, the newest changes; with one, the changes after it, oldest first,
    with a `next` link while there are more (RFC 5005 paging)."""
    q = parse_change_query(request.query, frozenset({"since", "provider", "kind", "limit", "cursor"}))
    pool, base = request.app[keys.POOL], str(request.url.origin())
    filters = urlencode(sorted((k, v) for k, v in request.query.items() if k in ("provider", "kind")))

    async def build() -> bytes:
        next_url = None
        if q.start is None and q.since_time is None:
            rows = await db.latest_changes(pool, providers=q.providers, kinds=q.kinds, limit=q.limit)
        else:
            rows = await reads.changes_since(
                pool,
                after_seq=q.start or 0,
                since_time=q.since_time,
                providers=q.providers,
                kinds=q.kinds,
                limit=q.limit + 1,
            )
            if len(rows) > q.limit:
                rows = rows[: q.limit]
                params = {**request.query, "cursor": str(rows[-1]["seq"])}
                params.pop("since", None)
                next_url = f"{base}{request.path}?{urlencode(sorted(params.items()))}"
        return atom_document(
            base=base,
            self_url=str(request.url),
            json_url=f"{base}/api/v1/changes" + (f"?{filters}" if filters else ""),
            feed_key=filters,
            rows=rows,
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


def _start(request: web.Request, q: ChangeQuery) -> int | None:
    last = request.headers.get("Last-Event-ID", "").strip()
    if last:
        if not last.isdigit() or len(last) > 18:
            raise BadRequest("invalid Last-Event-ID", [("Last-Event-ID", "expected the id of an event of this stream")])
        return int(last)
    return q.start


def _event(r: asyncpg.Record) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (r["seq"], _enc.encode(change_object(r)))


async def changes_stream(request: web.Request) -> web.StreamResponse:
    """Each matching change as an event whose id is its seq: from Last-Event-ID (or since) when
    given, else from now; a comment every HEARTBEAT seconds while nothing happens."""
    q = parse_change_query(request.query, frozenset({"since", "provider", "kind"}))
    start, notifier = _start(request, q), request.app[NOTIFIER]
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


async def _stream(request: web.Request, response: web.StreamResponse, q: ChangeQuery, after: int) -> None:
    notifier, pool, heartbeat = request.app[NOTIFIER], request.app[keys.POOL], request.app[HEARTBEAT_KEY]
    while not notifier.stopping.is_set():
        seen = notifier.latest
        rows = await reads.changes_since(
            pool, after_seq=after, since_time=q.since_time, providers=q.providers, kinds=q.kinds, limit=STREAM_PAGE
        )
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
    """Register the feed routes and the stream's notifier."""
    app[HEARTBEAT_KEY] = heartbeat or HEARTBEAT
    app.cleanup_ctx.append(_notifier)
    app.on_shutdown.append(_stop_streams)
    app.router.add_get("/api/v1/changes.atom", changes_atom)
    app.router.add_get("/api/v1/changes/stream", changes_stream)


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
