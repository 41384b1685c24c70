"""Whole-catalog documents for other tools: /api.json in models.dev's own shape, and the documents
built from it (`/model-schema.json`, `/exports/litellm.json`), at any `provider=`/`type=` slice;
models.dev's model cards (`/models.json`) and both together (`/catalog.json`).

Each slice is built once per catalog version through the response cache (lasting entries, dropped
when the catalog changes; concurrent first requests wait for the one build): PostgreSQL assembles
the document, and the CPU-bound rest (compacting, deriving) runs in a thread, off the event loop.
The slices people read are built again in the background once a change has settled, with the
build their handler made (services/api/prebuild.py), so the first request after a refresh finds
them built rather than wait seconds at 100,000 models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.history import at_version, point_in_time, reader
from services.api.respond import Cached
from shared.canonical import CANONICAL_PROVIDER
from shared.db import api_reads, canonical_reads
from shared.exports.litellm import litellm_cost_map_json
from shared.exports.model_schema import model_schema_json
from shared.exports.model_types import CHAT_ONLY, types_asked
from shared.schemas.api import DocumentQuery, LiteLLMQuery, ModelsDocumentQuery

_decode = msgspec.json.Decoder(dict[str, Any])


def compact(text: str) -> bytes:
    """PostgreSQL's jsonb text (`", "`, `": "`) without the spaces; numbers and strings as they are."""
    return msgspec.json.format(text.encode(), indent=-1)


async def _document(
    request: web.Request, query: DocumentQuery, default: tuple[str, ...] | None, render: Callable[[str], bytes]
) -> Cached:
    pit = await point_in_time(request, query.at)  # the catalog then (issue 13)
    pool = reader(request, pit)
    providers = sorted(set(query.provider)) or None
    types = types_asked(query.type, default)

    async def build() -> bytes:
        text = await api_reads.catalog_document(pool, providers=providers, types=types)
        return await asyncio.to_thread(render, text)

    key = f"{request.path}?provider={','.join(providers or [])}&type={','.join(types or ['all'])}"
    return at_version(request, pit, Cached(frozenset(providers or {ALL}), build, key=key, lasting=True))


async def api_json(request: web.Request, *, query: DocumentQuery) -> Cached:
    """The catalog as models.dev serves it: chat models unless `type=` asks for others; just the
    providers of `provider=` (an unknown one gives an empty catalog)."""
    return await _document(request, query, CHAT_ONLY, compact)


async def model_schema(request: web.Request, *, query: DocumentQuery) -> Cached:
    """models.dev's `/model-schema.json`: `$defs.Model` enumerates every `provider/model` id of
    the types asked (chat by default, as models.dev's own)."""
    types = types_asked(query.type)
    return await _document(request, query, CHAT_ONLY, lambda text: model_schema_json(_decode.decode(text), types))


async def litellm_cost_map(request: web.Request, *, query: LiteLLMQuery) -> Cached:
    """The catalog as a LiteLLM model cost map (for `LITELLM_MODEL_COST_MAP_URL`): every type
    unless `type=` asks for some."""
    return await _document(request, query, None, lambda text: litellm_cost_map_json(_decode.decode(text)))


async def models_json(request: web.Request, *, query: ModelsDocumentQuery) -> Cached:
    """models.dev's `/models.json`: every listed canonical model's card as received, by id (`{}`
    when there is none); with `at=`, the cards as they stood then."""
    pit = await point_in_time(request, query.at)
    pool = request.app[keys.POOL]
    at = (pit.version_at or pit.at) if pit is not None else None

    async def build() -> bytes:
        return await asyncio.to_thread(compact, await canonical_reads.models_document(pool, at))

    # Only a sync of the cards changes it (the refresh announces it as their pseudo-provider).
    plan = Cached(frozenset({CANONICAL_PROVIDER}), build, key=request.path, lasting=True)
    return at_version(request, pit, plan)


async def catalog_json(request: web.Request, *, query: DocumentQuery) -> Cached:
    """models.dev's `/catalog.json`: `{"models": /models.json, "providers": /api.json}`, the
    providers sliced by `provider=` and `type=` as /api.json's; with `at=`, both as they stood then."""
    pit = await point_in_time(request, query.at)
    pool, providers_pool = request.app[keys.POOL], reader(request, pit)
    at = (pit.version_at or pit.at) if pit is not None else None
    providers = sorted(set(query.provider)) or None
    types = types_asked(query.type, CHAT_ONLY)

    def render(models: str, catalog: str) -> bytes:
        return b'{"models":' + compact(models) + b',"providers":' + compact(catalog) + b"}"

    async def build() -> bytes:
        models = await canonical_reads.models_document(pool, at)
        catalog = await api_reads.catalog_document(providers_pool, providers=providers, types=types)
        return await asyncio.to_thread(render, models, catalog)

    key = f"{request.path}?provider={','.join(providers or [])}&type={','.join(types or ['all'])}"
    return at_version(request, pit, Cached(frozenset({ALL}), build, key=key, lasting=True))
