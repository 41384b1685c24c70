"""Worker resources opened once per worker process on the AsyncIO event-loop thread."""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from redis.asyncio import Redis

from shared.config import Settings
from shared.db.pool import create_pool
from shared.ratelimit import RateLimiter
from shared.refresh import RefreshContext
from shared.sources import HttpFetcher

log = structlog.get_logger(__name__)

_context: RefreshContext | None = None


def current_context() -> RefreshContext:
    """The resources of this worker process (set in after_worker_boot)."""
    if _context is None:
        raise RuntimeError("worker resources are not open: is WorkerResources in the middleware list?")
    return _context


async def open_context(settings: Settings) -> RefreshContext:
    """Open the pool, Redis client and HTTP session that the pipeline uses."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=8)
    redis = Redis.from_url(settings.redis_url, client_name=f"{settings.redis_prefix}:worker")
    session = aiohttp.ClientSession(headers={"User-Agent": "modelmeta/0.1"})
    limiter = RateLimiter(redis, settings.redis_prefix, settings.upstream_rate_limit)
    fetcher = HttpFetcher(
        session,
        limiter,
        timeout=settings.upstream_timeout,
        max_bytes=settings.upstream_max_bytes,
        attempts=settings.upstream_attempts,
        token=settings.upstream_token,
    )
    return RefreshContext(settings=settings, pool=pool, redis=redis, fetcher=fetcher)


async def close_context(ctx: RefreshContext) -> None:
    """Close what open_context opened."""
    await ctx.fetcher.session.close()
    await ctx.redis.aclose()
    await ctx.pool.close()


class WorkerResources(Middleware):
    """Opens the worker's resources after boot and closes them at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        # Runs after AsyncIO's before_worker_boot (it comes later in the list), so the event loop
        # exists, and before the worker consumes anything, so no message finds the pool missing.
        global _context
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None, "AsyncIO must come before WorkerResources"
        _context = loop_thread.run_coroutine(open_context(self.settings))
        log.info("worker_resources_open")

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        global _context
        loop_thread = get_event_loop_thread()
        if _context is not None and loop_thread is not None:
            loop_thread.run_coroutine(close_context(_context))
            _context = None
            log.info("worker_resources_closed")
