"""The stalled-run sweep: runs whose messages were lost are resent from PostgreSQL, or closed.

The leading scheduler runs it every few seconds. The actors are idempotent, so resending the
work of a run that was only slow does no harm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

from shared.db import runs
from shared.refresh import close_run, fail_run
from shared.resources import RefreshContext

log = structlog.get_logger(__name__)

#: How often a stalled run's pending work is sent again before the run is closed as failed.
MAX_RESENDS = 3


async def sweep_stalled_runs(
    ctx: RefreshContext,
    *,
    idle_seconds: float,
    send_plan: Callable[[int], None],
    send_sync: Callable[[int, str], None],
) -> list[tuple[int, str]]:
    """Resend the pending work of every run with no progress for `idle_seconds`, and after
    MAX_RESENDS close it as failed. Returns (run_id, "resent" or "closed") for each run touched."""
    async with ctx.pool.acquire() as conn:
        stalled = await runs.stalled_runs(conn, idle_seconds)
    actions: list[tuple[int, str]] = []
    for run in stalled:
        if run["resends"] < MAX_RESENDS:
            await _resend(ctx.pool, run, send_plan=send_plan, send_sync=send_sync)
            actions.append((run["id"], "resent"))
        else:
            await _give_up(ctx, run, f"no progress for {idle_seconds:g}s after {MAX_RESENDS} resends; gave up")
            actions.append((run["id"], "closed"))
    return actions


async def _resend(
    pool: asyncpg.Pool,
    run: asyncpg.Record,
    *,
    send_plan: Callable[[int], None],
    send_sync: Callable[[int, str], None],
) -> None:
    """Send a stalled run's work again: its plan, or its pending providers' syncs."""
    run_id = run["id"]
    async with pool.acquire() as conn:
        pending = await runs.pending_providers(conn, run_id) if run["planned"] else []
        await runs.mark_resent(conn, run_id)
    if run["planned"]:
        for pid in pending:
            await asyncio.to_thread(send_sync, run_id, pid)
    else:
        await asyncio.to_thread(send_plan, run_id)
    log.warning("stalled_run_resent", run_id=run_id, resends=run["resends"] + 1, providers=len(pending))


async def _give_up(ctx: RefreshContext, run: asyncpg.Record, error: str) -> None:
    """Close a run that stayed stalled: its finished providers' data stays, the rest fail."""
    run_id = run["id"]
    if run["planned"]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await runs.give_up_run(conn, run_id, error)
        await close_run(ctx, run_id)
    else:
        await fail_run(ctx.pool, run_id, error)
    log.error("stalled_run_closed", run_id=run_id, error=error)
