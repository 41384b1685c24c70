"""The web process: create_app(settings) and run_web(settings), which serves WEB_CONCURRENCY
processes on one port."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import Info
from redis.asyncio import Redis

from services.api import keys, ratelimit
from services.api.cache import PastInstants, ResponseCache, TotalsMemo, listen, poll_version
from services.api.handlers.webhooks import setup_webhooks
from services.api.middlewares import request_context
from services.api.pages import setup_pages
from services.api.prebuild import Prebuilder
from services.api.route import MAX_BODY
from services.api.routes import ROUTES, add_routes, openapi_json
from services.api.search import SearchIndex
from shared.config import Settings
from shared.db.catalog_writes import catalog_version
from shared.db.pool import create_pool
from shared.events import forget
from shared.sender import Sender

log = structlog.get_logger(__name__)

WEB_PROCESS = Info("modelmeta_web_process", "This web process: its instance id and pid")
#: What a request's head may hold (AppRunner's arguments), set explicitly rather than left to
#: aiohttp's defaults (the same values): a request line, and each header line, of at most 8190
#: bytes; at most 128 header lines; past any of them the parser answers 400 and closes the
#: connection. Bodies are capped at MAX_BODY (services/api/route.py) by client_max_size, counted
#: after decompression (413).
HANDLER_ARGS: dict[str, Any] = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 128}
#: Seconds a stopping process gives requests in flight.
SHUTDOWN_TIMEOUT = 20.0


def create_app(settings: Settings, *, enqueue: Callable[[int], None] | None = None) -> web.Application:
    app = web.Application(middlewares=[request_context], client_max_size=MAX_BODY)
    app[keys.SETTINGS] = settings
    app[keys.CACHE] = ResponseCache(settings.cache_ttl, settings.cache_max_bytes, enabled=settings.cache_enabled)
    app[keys.TOTALS] = TotalsMemo(app[keys.CACHE])
    app[keys.PREBUILDER] = Prebuilder(app[keys.CACHE])
    app[keys.INSTANTS] = PastInstants()
    app[keys.SEARCH] = SearchIndex(enabled=settings.search_in_memory)
    app[keys.ENQUEUE] = enqueue or Sender.from_settings(settings).plan_refresh
    app[keys.OPENAPI] = openapi_json()
    app.cleanup_ctx.append(_resources)
    ratelimit.install(app, frozenset(r.doc_path for r in ROUTES if r.admin))
    setup_webhooks(app)  # change notifications (issue 12): delivery resources and the stream's notifier
    add_routes(app)
    setup_pages(app)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = await create_pool(settings.database_url, min_size=2, max_size=20)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, client_name=f"{settings.redis_prefix}:web")
    app[keys.POOL], app[keys.REDIS] = pool, redis
    cache = app[keys.CACHE]
    cache.version = await catalog_version(pool)
    cache.watcher = app[keys.PREBUILDER]  # whole-catalog documents built again after a change
    stop = asyncio.Event()
    instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    WEB_PROCESS.info({"instance": instance, "pid": str(os.getpid())})
    tasks = [
        asyncio.create_task(listen(cache, redis, settings.redis_prefix, instance, stop)),
        asyncio.create_task(poll_version(cache, pool, redis, settings.redis_prefix, instance, stop)),
        asyncio.create_task(app[keys.SEARCH].maintain(pool, lambda: cache.version, stop)),
    ]
    log.info("web_resources_open", catalog_version=cache.version)
    yield
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    cache.watcher = None
    await app[keys.PREBUILDER].close()
    with contextlib.suppress(Exception):
        await forget(redis, settings.redis_prefix, instance)
    await redis.aclose()
    await pool.close()
    log.info("web_resources_closed")


def run_web(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT: in this process, or in WEB_CONCURRENCY processes sharing the port."""
    if settings.web_concurrency <= 1:
        asyncio.run(serve(settings, reuse_port=False))
        return 0
    return _supervise(settings)


async def serve(settings: Settings, *, reuse_port: bool, parent: int | None = None) -> None:
    """One web process: listen, and on the first SIGTERM or SIGINT (a second changes nothing: a
    process group and its manager may both send one) stop taking connections and finish those
    in flight within SHUTDOWN_TIMEOUT. A child of `parent` stops too when that parent is gone
    (killed outright), rather than hold the port as an orphan."""
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT, **HANDLER_ARGS)
    await runner.setup()
    try:
        await web.TCPSite(runner, port=settings.port, reuse_port=reuse_port or None).start()
        log.info("web_listening", port=settings.port, pid=os.getpid())
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        orphaned = asyncio.create_task(_orphaned(parent, stop)) if parent is not None else None
        await stop.wait()
        log.info("web_stopping", pid=os.getpid())
        if orphaned is not None:
            orphaned.cancel()
    finally:
        await runner.cleanup()


async def _orphaned(parent: int, stop: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            break
    log.warning("web_parent_gone", parent=parent)
    stop.set()


def _child(settings: Settings, parent: int) -> None:
    from shared.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings, reuse_port=True, parent=parent))


def _supervise(settings: Settings) -> int:
    """WEB_CONCURRENCY children on one port (SO_REUSEPORT: the kernel spreads the connections),
    each with its own cache and instance id. A signal stops them all; a child that dies stops the
    others too, and the exit code says so, for the process manager to restart the whole."""
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_child, args=(settings, os.getpid()), name=f"web-{i}")
        for i in range(settings.web_concurrency)
    ]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    for child in children:
        child.start()
    log.info("web_started", processes=len(children), port=settings.port, pids=[c.pid for c in children])
    code = 0
    while not stop.wait(0.25):
        dead = [c for c in children if not c.is_alive()]
        if dead:
            code = dead[0].exitcode or 1
            log.error("web_process_died", pid=dead[0].pid, exitcode=dead[0].exitcode)
            break
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join(SHUTDOWN_TIMEOUT + 5)
        if child.is_alive():
            child.kill()
            child.join()
    log.info("web_stopped", exitcode=code)
    return code
