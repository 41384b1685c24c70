"""`at=`: the catalog as it stood at a point in time, and a model's price timeline (API.md, "The
catalog at a point in time").

A handler that takes `at=` starts with `pit, request = await point_in_time(request)`: `request`
comes back without `at`, and `pit` is None when the answer is the current catalog (no `at`, a time
in the future, or one after the newest change). Otherwise the handler reads through
`reader(request, pit)` (the catalog then, with the same queries) and answers with `respond_at`:
an answer about a past catalog never changes, so it is cached by the catalog version it was
built from, which it carries in X-Catalog-Version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from services.api import keys
from shared.db import Queryable
from shared.db import history as history_db
from shared.errors import BadRequest, NotFound
from shared.history import parse_at

#: Cache-Control of an answer about a past catalog: it never changes.
PAST = "public, max-age=86400, immutable"
#: Cache-Control of an answer about the current catalog (as every other route's).
CURRENT = "public, max-age=15"


@dataclass(frozen=True, slots=True)
class PointInTime:
    """A past instant a request asks about, and the catalog version in force then."""

    at: datetime
    version: int  # 0 before the first data
    version_at: datetime | None  # when that version was committed; None before the first data


async def point_in_time(request: web.Request) -> tuple[PointInTime | None, web.Request]:
    """The instant of `at=` (400 when malformed), and the request without it."""
    if "at" not in request.query:
        return None, request
    try:
        at = parse_at(request.query["at"])
    except ValueError as e:
        raise BadRequest("invalid query parameters", [("at", str(e))]) from None
    rest = request.clone(rel_url=request.rel_url.with_query([(k, v) for k, v in request.query.items() if k != "at"]))
    if at >= datetime.now(UTC):
        return None, rest
    found = await history_db.version_at(request.app[keys.POOL], at)
    if found.newest is None or found.version == found.newest:
        return None, rest  # nothing changed since: the catalog as it is
    return PointInTime(at, found.version or 0, found.at), rest


def reader(request: web.Request, pit: PointInTime | None) -> Queryable:
    """The pool, or (for a past instant) the catalog as it stood then, for shared.db.models' reads."""
    pool = request.app[keys.POOL]
    if pit is None:
        return pool
    # The catalog at the version's own time is the catalog at any instant until the next version.
    return history_db.catalog_at(pool, pit.version_at or pit.at)


async def respond_at(
    request: web.Request,
    pit: PointInTime,
    tags: frozenset[str],
    build: Callable[[], Awaitable[bytes]],
    *,
    final: bool = True,
) -> web.Response:
    """Serve an answer about a past catalog from the response cache by the version it was built
    from. final=False: it also shows live data (compare's benchmarks), so it is kept and cached as
    briefly as any other answer and dropped with its tags; otherwise it is never dropped by events."""
    query = urlencode(sorted(request.query.items()))
    key = f"{request.path}?{query}#catalog-version={pit.version}"
    entry = await request.app[keys.CACHE].get_or_build(key, tags if not final else frozenset(), build)
    return _answer(request, entry.body, entry.etag, pit.version, PAST if final else CURRENT)


def _answer(request: web.Request, body: bytes, etag: str, version: int, cache_control: str) -> web.Response:
    headers = {"ETag": etag, "X-Catalog-Version": str(version), "Cache-Control": cache_control}
    inm = request.headers.get("If-None-Match")
    if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


class PricePeriod(msgspec.Struct):
    """An interval in which a model was listed with the same `cost` object."""

    from_: datetime = msgspec.field(name="from")
    to: datetime | None  # None while it is current
    cost: dict[str, Any] | None  # the models.dev cost object; None when the model had no price


class PriceTimeline(msgspec.Struct):
    """A model's price timeline, oldest first."""

    data: list[PricePeriod]
    total: int
    next_cursor: None = None


async def model_prices(request: web.Request, provider_id: str, model_id: str) -> web.Response:
    """GET /api/v1/models/{provider_id}/{model_id}/prices."""
    pool = request.app[keys.POOL]
    cache = request.app[keys.CACHE]

    async def build() -> bytes:
        rows = await history_db.price_timeline(pool, provider_id, model_id)
        if not rows:
            raise NotFound(f"no model {provider_id}/{model_id}")
        periods = [PricePeriod(r["valid_from"], r["valid_to"], r["cost"]) for r in rows]
        return msgspec.json.encode(PriceTimeline(periods, len(periods)))

    key = f"{request.path}?{urlencode(sorted(request.query.items()))}"
    entry = await cache.get_or_build(key, frozenset({provider_id}), build)
    return _answer(request, entry.body, entry.etag, entry.version, CURRENT)
