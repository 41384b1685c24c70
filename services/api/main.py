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
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from services.api import keys, views
from services.api.cache import ResponseCache, TotalsMemo, listen, poll_version
from services.api.middlewares import request_context
from services.api.openapi import docs_page, openapi_document
from services.api.webhooks import setup_webhooks
from shared.config import Settings
from shared.db.catalog import catalog_version
from shared.db.pool import create_pool
from shared.events import forget

log = structlog.get_logger(__name__)


def _default_enqueue(run_id: int) -> None:
    from services.worker.actors import plan_refresh

    plan_refresh.send(run_id)


def create_app(settings: Settings, *, enqueue: Callable[[int], None] | None = None) -> web.Application:
    app = web.Application(middlewares=[request_context], client_max_size=views.MAX_BODY)
    app[keys.SETTINGS] = settings
    app[keys.CACHE] = ResponseCache(settings.cache_ttl, enabled=settings.cache_enabled)
    app[keys.TOTALS] = TotalsMemo(app[keys.CACHE])
    app[keys.ENQUEUE] = enqueue or _default_enqueue
    app.cleanup_ctx.append(_resources)
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics)
    r.add_get("/api.json", views.api_json)
    r.add_get("/api/v1/openapi.json", openapi_document)
    r.add_get("/docs", docs_page)
    r.add_get("/api/v1/models", views.list_models)
    r.add_get("/api/v1/models/compare", views.compare)
    r.add_get("/api/v1/models/capability/{capability}", views.models_by_capability)
    r.add_get("/api/v1/models/{provider_id}/{model_id:.+}", views.model_resource)
    r.add_get("/api/v1/capabilities", views.capabilities)
    r.add_get("/api/v1/providers", views.list_providers)
    r.add_get("/api/v1/providers/{provider_id}", views.get_provider)
    r.add_get("/api/v1/providers/{provider_id}/models", views.provider_models)
    r.add_post("/api/v1/refresh", views.post_refresh)
    r.add_get("/api/v1/refresh/status", views.refresh_status)
    r.add_get("/api/v1/refresh/{run_id}", views.get_run)
    r.add_get("/api/v1/changes", views.changes)
    r.add_post("/api/v1/benchmarks", views.post_benchmarks)
    r.add_get("/api/v1/benchmarks", views.get_benchmarks)
    setup_webhooks(app)  # change notifications (issue 12): webhook admin routes, Atom and SSE feeds
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


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        # asyncpg's own timeout: cancelling a query from outside can leave its connection mid-protocol.
        n = await request.app[keys.POOL].fetchval("SELECT count(*) FROM models WHERE removed_at IS NULL", timeout=2)
        checks["postgresql"] = "ok"
        checks["catalog"] = "ok" if n else "empty"
    except Exception as e:
        checks["postgresql"] = f"unreachable: {type(e).__name__}"
        checks["catalog"] = "unknown"
    try:
        await asyncio.wait_for(request.app[keys.REDIS].ping(), 2)
        checks["redis"] = "ok"
    except Exception as e:
        checks["redis"] = f"unreachable: {type(e).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def run_web(settings: Settings) -> None:
    log.info("web_listening", port=settings.port)
    web.run_app(create_app(settings), port=settings.port, access_log=None, shutdown_timeout=20, print=None)
