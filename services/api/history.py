"""`at=`: the catalog as it stood at a point in time (API.md, "The catalog at a point in time").

`at` is a declared field of the routes' query Structs (shared/schemas/api.py). A handler that takes
it asks `point_in_time(request, query.at)`: None when the answer is the current catalog (no `at`, a
time in the future, or one after the newest change), otherwise the instant and the catalog version
in force then. It reads through `reader(request, pit)` (the catalog then, with the same queries of
shared/db/api_reads.py) and answers `at_version(...)` of its Cached: an answer about a past catalog
never changes, so it is kept by the catalog version it was built from, which it carries in
X-Catalog-Version.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from services.api import keys
from services.api.respond import Cached
from shared.db import Queryable
from shared.db import history as history_db
from shared.errors import BadRequest
from shared.history import parse_at
from shared.listing import ModelQuery


@dataclass(frozen=True, slots=True)
class PointInTime:
    """A past instant a request asks about, and the catalog version in force then."""

    at: datetime
    version: int  # 0 before the first data
    version_at: datetime | None  # when that version was committed; None before the first data


async def point_in_time(request: web.Request, at: str | None) -> PointInTime | None:
    """The past catalog `at=` asks about (400 with invalid_params when it is no instant), or None
    for the current one."""
    if at is None:
        return None
    try:
        instant = parse_at(at)
    except ValueError as e:
        raise BadRequest("invalid query parameters", [("at", str(e))]) from None
    if instant >= datetime.now(UTC):
        return None
    instants = request.app[keys.INSTANTS]
    if (known := instants.get(instant)) is not None:
        return PointInTime(instant, *known)
    found = await history_db.version_at(request.app[keys.POOL], instant)
    if found.newest is None or found.version == found.newest:
        return None  # nothing changed since: the catalog as it is (until the next version)
    instants.put(instant, found.version or 0, found.at)  # a version after it exists: fixed for good
    return PointInTime(instant, found.version or 0, found.at)


def reader(request: web.Request, pit: PointInTime | None) -> Queryable:
    """The pool, or (for a past instant) the catalog as it stood then, for shared.db.api_reads."""
    pool: Queryable = request.app[keys.POOL]
    if pit is None:
        return pool
    # The catalog at the version's own time is the catalog at any instant until the next version.
    return history_db.catalog_at(pool, pit.version_at or pit.at)


def usable_total(pit: PointInTime | None, query: ModelQuery, known: int | None) -> int | None:
    """The known total of a list to hand shared.db.api_reads.list_models: none for a ranked search
    (`q=` without `sort=`) of a past catalog. Told a large total, the search reads its rank tiers
    in index order, probing the narrow search table once per name length: the catalog at an
    instant has no index there, so each probe computes every version's search text (100,000
    models: 7.5 s a page). Not told, it reads its matches once, ranking and counting them (0.4 s)."""
    return None if pit is not None and query.q and not query.sort else known


def at_version(request: web.Request, pit: PointInTime | None, plan: Cached, *, final: bool = True) -> Cached:
    """A handler's Cached as the answer about a past catalog: keyed and labelled by the version it
    is built from, kept until the cache is cleared (dropped by no provider's event). final=False:
    it also shows live data (compare's benchmarks), so it is cached and dropped as any other."""
    if pit is None:
        return plan
    key = f"{request.path}?{request.query_string}#catalog-version={pit.version}"
    if not final:
        return dataclasses.replace(plan, key=key, version=pit.version)
    return dataclasses.replace(plan, tags=frozenset(), key=key, lasting=True, version=pit.version, immutable=True)
