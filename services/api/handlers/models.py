"""Models: lists (with filters, by capability), one model (by canonical or bare id), its history,
and the capability counts."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.history import PointInTime, at_version, point_in_time, reader, usable_total
from services.api.respond import Cached, encode, json_page
from shared.db import Queryable, api_reads
from shared.db import history as history_db
from shared.errors import Ambiguous, NotFound, Redirect
from shared.listing import ModelQuery, encode_cursor, model_query
from shared.schemas.api import (
    BareModelPath,
    CapabilitiesQuery,
    CapabilityCount,
    CapabilityModelsQuery,
    CapabilityPath,
    HistoryQuery,
    ModelListQuery,
    ModelPath,
    OneModelQuery,
    Page,
    PricePeriod,
    Query,
    change_object,
)

#: Words that stand where a provider id would, for routes of their own.
RESERVED = frozenset({"compare", "capability", "refresh"})


def model_list(request: web.Request, mq: ModelQuery, pit: PointInTime | None = None) -> Cached:
    """A page of models (of the catalog at `pit`, `at=`); the total is counted once per filter and
    catalog version."""
    pool, cache, totals = reader(request, pit), request.app[keys.CACHE], request.app[keys.TOTALS]
    filter_key = mq.filter_key().decode() + (f"@{pit.version}" if pit else "")
    # Benchmark results (imported, and the cards' through today's links) are not versioned.
    final = mq.has_benchmark is None and mq.sort_benchmark is None

    async def build() -> bytes:
        version = cache.version
        found = await _search_from_memory(request, mq, version) if pit is None else None
        if found is not None:
            docs, total, position = found
        else:
            known = await totals.known(filter_key)
            with totals.counting(filter_key) as counted:
                docs, total, position = await api_reads.list_models(pool, mq, known_total=usable_total(pit, mq, known))
                counted(total)
        # A past catalog's total holds for good, unless it counts today's benchmark results.
        totals.put(filter_key, None if pit and final else version, total)
        return json_page(docs, total, encode_cursor(mq.cursor_kind(), position) if position else None)

    plan = Cached(frozenset(mq.providers) if mq.providers else frozenset({ALL}), build)
    return at_version(request, pit, plan, final=final)


async def _search_from_memory(
    request: web.Request, mq: ModelQuery, version: int
) -> tuple[list[str], int, list[Any] | None] | None:
    """A ranked search of the current catalog answered from this process's search structure
    (services/api/search.py), or None when PostgreSQL answers it."""
    index = request.app[keys.SEARCH]
    snap = index.serves(mq, version)
    return None if snap is None else await index.page(request.app[keys.POOL], snap, mq)


async def list_models(request: web.Request, *, query: ModelListQuery) -> Cached:
    return model_list(request, model_query(query), await point_in_time(request, query.at))


async def models_by_capability(request: web.Request, *, query: CapabilityModelsQuery, path: CapabilityPath) -> Cached:
    pit = await point_in_time(request, query.at)
    return model_list(request, model_query(query, capability=path.capability), pit)


async def get_model(request: web.Request, *, query: OneModelQuery, path: ModelPath) -> Cached:
    return _model(request, f"{path.provider_id}/{path.model_id}", await point_in_time(request, query.at))


async def get_bare_model(request: web.Request, *, query: OneModelQuery, path: BareModelPath) -> Cached:
    return _model(request, path.model_id, await point_in_time(request, query.at))


def _model(request: web.Request, model_path: str, pit: PointInTime | None) -> Cached:
    """A model by its canonical id (as it stood at `pit`, `at=`); a path whose first segment is no
    provider is a bare model id."""
    pool = reader(request, pit)
    pid, _, mid = model_path.partition("/")

    async def build() -> bytes:
        doc = await api_reads.get_model(pool, pid, mid) if mid else None
        if doc is None:
            await _resolve_bare_id(pool, model_path)
            raise NotFound(f"no model {model_path}")
        return doc.encode()

    return at_version(request, pit, Cached(frozenset({pid}), build))


async def _resolve_bare_id(pool: Queryable, model_path: str) -> None:
    """Redirect to the one provider's model that has this bare id, or list the several; return
    when the path is canonical (its first segment a provider) or no provider lists it."""
    pid, _, mid = model_path.partition("/")
    if pid in RESERVED or (mid and await api_reads.provider_exists(pool, pid)):
        return
    providers = await api_reads.providers_listing(pool, model_path)
    if len(providers) == 1:
        raise Redirect(canonical_url(providers[0], model_path))
    if providers:
        raise Ambiguous(
            f"{len(providers)} providers list the model id {model_path!r}; ask for one by its canonical id",
            [f"{p}/{model_path}" for p in providers],
        )


def canonical_url(provider_id: str, model_id: str) -> str:
    """The URL of a model: its id's slashes kept, anything else that needs it quoted."""
    return f"/api/v1/models/{quote(provider_id, safe='')}/{quote(model_id, safe='/')}"


async def model_history(request: web.Request, *, query: HistoryQuery, path: ModelPath) -> Cached:
    pool = request.app[keys.POOL]
    pid, mid = path.provider_id, path.model_id

    async def build() -> bytes:
        if await api_reads.get_model(pool, pid, mid) is None:
            raise NotFound(f"no model {pid}/{mid}")
        rows, total, last = await api_reads.model_history(pool, pid, mid, before_seq=query.cursor, limit=query.limit)
        page = Page(data=[change_object(r) for r in rows], total=total, next_cursor=str(last) if last else None)
        return encode(page)

    return Cached(frozenset({pid}), build)


async def model_prices(request: web.Request, *, query: Query, path: ModelPath) -> Cached:
    """A model's price timeline (issue 13): each interval with the same `cost` object, oldest first."""
    pool = request.app[keys.POOL]
    pid, mid = path.provider_id, path.model_id

    async def build() -> bytes:
        rows = await history_db.price_timeline(pool, pid, mid)
        if not rows:
            raise NotFound(f"no model {pid}/{mid}")
        periods = [PricePeriod(from_=r["valid_from"], to=r["valid_to"], cost=r["cost"]) for r in rows]
        return encode(Page(data=periods, total=len(periods), next_cursor=None))

    return Cached(frozenset({pid}), build)


async def capabilities(request: web.Request, *, query: CapabilitiesQuery) -> Cached:
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        counts = [CapabilityCount(name=n, count=c) for n, c in (await api_reads.capability_counts(pool)).items()]
        start = [c.name for c in counts].index(query.cursor) + 1 if query.cursor else 0
        page = counts[start : start + query.limit]
        more = start + query.limit < len(counts)
        return encode(Page(data=page, total=len(counts), next_cursor=page[-1].name if more and page else None))

    return Cached(frozenset({ALL}), build)
