"""Providers: the list, one provider, and a provider's models."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.handlers.models import model_list
from services.api.history import point_in_time
from services.api.respond import Cached, json_page
from shared.db import api_reads
from shared.errors import NotFound
from shared.listing import model_query
from shared.schemas.api import ProviderModelsQuery, ProviderPath, ProvidersQuery, Query


async def list_providers(request: web.Request, *, query: ProvidersQuery) -> Cached:
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        docs, total, last = await api_reads.list_providers(
            pool, include_removed=query.include_removed, after_id=query.cursor, limit=query.limit
        )
        return json_page(docs, total, last)

    return Cached(frozenset({ALL}), build)


async def get_provider(request: web.Request, *, query: Query, path: ProviderPath) -> Cached:
    pool, pid = request.app[keys.POOL], path.provider_id

    async def build() -> bytes:
        doc = await api_reads.get_provider(pool, pid)
        if doc is None:
            raise NotFound(f"no provider {pid!r}")
        return doc.encode()

    return Cached(frozenset({pid}), build)


async def provider_models(request: web.Request, *, query: ProviderModelsQuery, path: ProviderPath) -> Cached:
    pool, pid = request.app[keys.POOL], path.provider_id
    models = model_list(request, model_query(query, provider=pid), await point_in_time(request, query.at))

    async def build() -> bytes:
        if not await api_reads.provider_exists(pool, pid):
            raise NotFound(f"no provider {pid!r}")
        return await models.build()

    return dataclasses.replace(models, build=build)  # with `at=`, keyed by its catalog version
