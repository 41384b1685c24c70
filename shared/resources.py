"""The connections the refresh pipeline works with, opened and closed together."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import asyncpg
from redis.asyncio import Redis

from shared.config import Settings
from shared.db.pool import create_pool
from shared.ratelimit import RateLimiter
from shared.sender import Sender
from shared.sources import HttpFetcher


@dataclass(frozen=True, slots=True)
class RefreshContext:
    """What the pipeline needs: settings and open connections."""

    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    fetcher: HttpFetcher
    #: Enqueues what the pipeline hands on (webhook deliveries after each commit).
    sender: Sender


async def open_context(settings: Settings, *, client_name: str = "worker") -> RefreshContext:
    """Open the pool, Redis client and HTTP session that the pipeline uses."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=8)
    redis = Redis.from_url(settings.redis_url, client_name=f"{settings.redis_prefix}:{client_name}")
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
    sender = Sender.from_settings(settings)
    return RefreshContext(settings=settings, pool=pool, redis=redis, fetcher=fetcher, sender=sender)


async def close_context(ctx: RefreshContext) -> None:
    """Close what open_context opened."""
    ctx.sender.close()
    await ctx.fetcher.session.close()
    await ctx.redis.aclose()
    await ctx.pool.close()
