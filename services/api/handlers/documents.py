"""Whole-catalog documents for other tools: /api.json in models.dev's own shape."""

from __future__ import annotations

from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.respond import Cached
from shared.db import api_reads


async def api_json(request: web.Request) -> Cached:
    """The catalog as models.dev serves it (a client's extra query parameters are ignored)."""
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        return (await api_reads.catalog_document(pool)).encode()

    return Cached(frozenset({ALL}), build, key="/api.json")
