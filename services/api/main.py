"""The web process: create_app(settings) and run_web(settings)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web
from redis.asyncio import Redis

from services.api import keys
from services.api.cache import ResponseCache, TotalsMemo, listen, poll_version
from services.api.middlewares import request_context
from services.api.route import MAX_BODY
from services.api.routes import add_routes, openapi_json
from shared.config import Settings
from shared.db.catalog_writes import catalog_version
from shared.db.pool import create_pool
from shared.events import forget
from shared.sender import Sender

log = structlog.get_logger(__name__)


def create_app(settings: Settings, *, enqueue: Callable[[int], None] | None = None) -> web.Application:
    app = web.Application(middlewares=[request_context], client_max_size=MAX_BODY)
    app[keys.SETTINGS] = settings
    app[keys.CACHE] = ResponseCache(settings.cache_ttl, settings.cache_max_bytes, enabled=settings.cache_enabled)
    app[keys.TOTALS] = TotalsMemo(app[keys.CACHE])
    app[keys.ENQUEUE] = enqueue or Sender.from_settings(settings).plan_refresh
    app[keys.OPENAPI] = openapi_json()
    app.cleanup_ctx.append(_resources)
    add_routes(app)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = await create_pool(settings.database_url, min_size=2, max_size=20)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, client_name=f"{settings.redis_prefix}:web")
    app[keys.POOL], app[keys.REDIS] = pool, redis
    cache = app[keys.CACHE]
    cache.version = await catalog_version(pool)
    stop = asyncio.Event()
    instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    tasks = [
        asyncio.create_task(listen(cache, redis, settings.redis_prefix, instance, stop)),
        asyncio.create_task(poll_version(cache, pool, redis, settings.redis_prefix, instance, stop)),
    ]
    log.info("web_resources_open", catalog_version=cache.version)
    yield
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await forget(redis, settings.redis_prefix, instance)
    await redis.aclose()
    await pool.close()
    log.info("web_resources_closed")


def run_web(settings: Settings) -> None:
    log.info("web_listening", port=settings.port)
    web.run_app(create_app(settings), port=settings.port, access_log=None, shutdown_timeout=20, print=None)
