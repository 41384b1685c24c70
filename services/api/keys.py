"""Typed application keys for the resources the web app holds."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from services.api.cache import PastInstants, ResponseCache, TotalsMemo
from services.api.prebuild import Prebuilder
from services.api.search import SearchIndex
from shared.config import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
CACHE = web.AppKey("cache", ResponseCache)
TOTALS = web.AppKey("totals", TotalsMemo)
#: Ranked text search from memory (issue 14).
SEARCH = web.AppKey("search", SearchIndex)
#: Builds the whole-catalog documents a change dropped again, ahead of the next request.
PREBUILDER = web.AppKey("prebuilder", Prebuilder)
#: Past instants (`at=`) resolved to the catalog version in force then.
INSTANTS = web.AppKey("instants", PastInstants)
#: The OpenAPI document, encoded.
OPENAPI = web.AppKey("openapi", bytes)
#: Sends plan_refresh(run_id) to the workers (blocking; called in a thread).
ENQUEUE: web.AppKey[Callable[[int], None]] = web.AppKey("enqueue")
