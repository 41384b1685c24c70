"""Whole-catalog documents for other tools: /api.json in models.dev's own shape, and the documents
built from it (`/model-schema.json`, `/exports/litellm.json`), each built once per catalog version
through the response cache."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.respond import Cached
from shared.db import api_reads
from shared.exports.litellm import litellm_cost_map_json
from shared.exports.model_schema import model_schema_json

_decode = msgspec.json.Decoder(dict[str, Any])


async def api_json(request: web.Request) -> Cached:
    """The catalog as models.dev serves it (a client's extra query parameters are ignored)."""
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        return (await api_reads.catalog_document(pool)).encode()

    return Cached(frozenset({ALL}), build, key="/api.json")


def _derived(request: web.Request, key: str, render: Callable[[Mapping[str, Any]], bytes]) -> Cached:
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        return render(_decode.decode(await api_reads.catalog_document(pool)))

    return Cached(frozenset({ALL}), build, key=key)


async def model_schema(request: web.Request) -> Cached:
    """models.dev's `/model-schema.json`: `$defs.Model` enumerates every `provider/model` id."""
    return _derived(request, "/model-schema.json", model_schema_json)


async def litellm_cost_map(request: web.Request) -> Cached:
    """The catalog as a LiteLLM model cost map (for `LITELLM_MODEL_COST_MAP_URL`)."""
    return _derived(request, "/exports/litellm.json", litellm_cost_map_json)
