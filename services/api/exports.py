"""Whole-catalog documents for other tools: `/model-schema.json` and `/exports/litellm.json`.

Each is built from the catalog document `/api.json` serves (the same query), once per catalog
version: the response cache holds the encoded body until the catalog changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.views import respond
from shared.db import models as q
from shared.exports.litellm import litellm_cost_map_json
from shared.exports.model_schema import model_schema_json

_decode = msgspec.json.Decoder(dict[str, Any])


async def _serve(request: web.Request, key: str, render: Callable[[Mapping[str, Any]], bytes]) -> web.Response:
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        return render(_decode.decode(await q.catalog_document(pool)))

    return await respond(request, key, frozenset({ALL}), build)


async def model_schema(request: web.Request) -> web.Response:
    """models.dev's `/model-schema.json`: `$defs.Model` enumerates every `provider/model` id."""
    return await _serve(request, "/model-schema.json", model_schema_json)


async def litellm_cost_map(request: web.Request) -> web.Response:
    """The catalog as a LiteLLM model cost map (for `LITELLM_MODEL_COST_MAP_URL`)."""
    return await _serve(request, "/exports/litellm.json", litellm_cost_map_json)
