"""Run the refresh pipeline in-process, as the actors would, against real PostgreSQL and Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from shared import refresh
from shared.config import Settings
from shared.db import runs
from shared.enums import Trigger
from shared.resources import RefreshContext, close_context, open_context


@asynccontextmanager
async def pipeline(settings: Settings, **overrides: Any) -> AsyncIterator[RefreshContext]:
    ctx = await open_context(dataclasses.replace(settings, **overrides))
    try:
        yield ctx
    finally:
        await close_context(ctx)


async def refresh_inline(
    ctx: RefreshContext, *, providers: list[str] | None = None, force: bool = False
) -> asyncpg.Record:
    """One whole run: request, plan, sync every provider; return the closed run."""
    run, created = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI, providers=providers, force=force)
    assert created
    for pid in await refresh.plan_refresh(ctx, run["id"]):
        await refresh.sync_provider(ctx, run["id"], pid)
    final = await runs.get_run(ctx.pool, run["id"])
    assert final is not None
    return final


async def listed_raw(pool: asyncpg.Pool) -> dict[tuple[str, str], Any]:
    rows = await pool.fetch("SELECT provider_id, model_id, raw FROM models WHERE removed_at IS NULL")
    return {(r["provider_id"], r["model_id"]): r["raw"] for r in rows}
