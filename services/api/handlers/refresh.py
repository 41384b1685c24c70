"""Refresh runs: ask for one (admin), the recent ones with the schedule, one with its providers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from aiohttp import web

from services.api import keys
from services.api.respond import uncached
from shared.db import runs
from shared.enums import Trigger
from shared.errors import NotFound
from shared.refresh import fail_run, request_refresh
from shared.schedule import read_state
from shared.schemas.api import (
    Query,
    RefreshHeaders,
    RefreshRequest,
    RefreshStatus,
    RunPath,
    Schedule,
    Source,
    run_object,
)

log = structlog.get_logger(__name__)


async def post_refresh(request: web.Request, *, headers: RefreshHeaders, body: RefreshRequest) -> web.Response:
    pool = request.app[keys.POOL]
    run, created = await request_refresh(
        pool, trigger=Trigger.API, providers=body.providers, force=body.force, idempotency_key=headers.idempotency_key
    )
    if created:
        try:
            await asyncio.to_thread(request.app[keys.ENQUEUE], run["id"])
        except Exception as e:
            await fail_run(pool, run["id"], f"could not enqueue: {e}")
            raise
        run = await runs.get_run(pool, run["id"]) or run
    return uncached(
        run_object(run, coalesced=not created), status=202, headers={"Location": f"/api/v1/refresh/{run['id']}"}
    )


async def refresh_status(request: web.Request, *, query: Query) -> web.Response:
    pool, settings = request.app[keys.POOL], request.app[keys.SETTINGS]
    recent = await runs.recent_runs(pool, 20)
    try:
        state = await read_state(request.app[keys.REDIS], settings.redis_prefix)
    except Exception as e:  # Redis away: the runs are still worth showing
        log.warning("schedule_unreadable", error=f"{type(e).__name__}: {e}")
        state = None
    schedule = Schedule(
        interval=settings.refresh_interval,
        next_run_at=datetime.fromtimestamp(state.next_run_at, tz=UTC)
        if state and state.next_run_at is not None
        else None,
        leader=state.leader if state else None,
    )
    status = RefreshStatus(
        data=[run_object(r) for r in recent], schedule=schedule, source=Source(url=settings.modelsdev_url)
    )
    return uncached(status)


async def get_run(request: web.Request, *, query: Query, path: RunPath) -> web.Response:
    pool = request.app[keys.POOL]
    run = await runs.get_run(pool, path.run_id)
    if run is None:
        raise NotFound(f"no run {path.run_id}")
    return uncached(run_object(run, providers=await runs.provider_runs(pool, path.run_id)))
