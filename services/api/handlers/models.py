"""Models: lists (with filters, by capability), one model (by canonical or bare id), its history,
and the capability counts."""

from __future__ import annotations

from urllib.parse import quote

import asyncpg
from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.respond import Cached, encode, json_page
from shared.db import api_reads
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
    Page,
    Query,
    change_object,
)

#: Words that stand where a provider id would, for routes of their own.
RESERVED = frozenset({"compare", "capability", "refresh"})


def model_list(request: web.Request, mq: ModelQuery) -> Cached:
    """A page of models; the total is counted once per filter and catalog version."""
    pool, cache, totals = request.app[keys.POOL], request.app[keys.CACHE], request.app[keys.TOTALS]
    filter_key = mq.filter_key().decode()

    async def build() -> bytes:
        version = cache.version
        docs, total, position = await api_reads.list_models(pool, mq, known_total=totals.get(filter_key))
        totals.put(filter_key, version, total)
        return json_page(docs, total, encode_cursor(mq.cursor_kind(), position) if position else None)

    return Cached(frozenset(mq.providers) if mq.providers else frozenset({ALL}), build)


async def list_models(request: web.Request, *, query: ModelListQuery) -> Cached:
    return model_list(request, model_query(query))


async def models_by_capability(request: web.Request, *, query: CapabilityModelsQuery, path: CapabilityPath) -> Cached:
    return model_list(request, model_query(query, capability=path.capability))


async def get_model(request: web.Request, *, query: Query, path: ModelPath) -> Cached:
    return _model(request, f"{path.provider_id}/{path.model_id}")


async def get_bare_model(request: web.Request, *, query: Query, path: BareModelPath) -> Cached:
    return _model(request, path.model_id)


def _model(request: web.Request, model_path: str) -> Cached:
    """A model by its canonical id; a path whose first segment is no provider is a bare model id."""
    pool = request.app[keys.POOL]
    pid, _, mid = model_path.partition("/")

    async def build() -> bytes:
        doc = await api_reads.get_model(pool, pid, mid) if mid else None
        if doc is None:
            await _resolve_bare_id(pool, model_path)
            raise NotFound(f"no model {model_path}")
        return doc.encode()

    return Cached(frozenset({pid}), build)


async def _resolve_bare_id(pool: asyncpg.Pool, model_path: str) -> None:
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


async def capabilities(request: web.Request, *, query: CapabilitiesQuery) -> Cached:
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        counts = [CapabilityCount(name=n, count=c) for n, c in (await api_reads.capability_counts(pool)).items()]
        start = [c.name for c in counts].index(query.cursor) + 1 if query.cursor else 0
        page = counts[start : start + query.limit]
        more = start + query.limit < len(counts)
        return encode(Page(data=page, total=len(counts), next_cursor=page[-1].name if more and page else None))

    return Cached(frozenset({ALL}), build)
