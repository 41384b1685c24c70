"""A run whose messages were lost is resent from PostgreSQL, and closed if it still makes no progress."""

from __future__ import annotations

import asyncio

from shared import refresh, stalled
from shared.config import Settings
from shared.enums import Trigger
from tests.support import listed, pipeline


async def test_lost_messages_are_resent_and_the_run_completes(settings: Settings) -> None:
    async with pipeline(settings) as ctx:
        run, _ = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI)
        providers = await refresh.plan_refresh(ctx, run["id"])
        # Two of the sync messages were delivered; the rest were lost (a Redis restart, say).
        for pid in providers[:2]:
            await refresh.sync_provider(ctx, run["id"], pid)
        await asyncio.sleep(0.05)
        sent: list[tuple[int, str]] = []
        actions = await stalled.sweep_stalled_runs(
            ctx, idle_seconds=0.01, send_plan=lambda r: None, send_sync=lambda r, p: sent.append((r, p))
        )
        assert actions == [(run["id"], "resent")]
        assert sorted(p for _, p in sent) == sorted(providers[2:])
        for r, p in sent:
            await refresh.sync_provider(ctx, r, p)
        final = await ctx.pool.fetchrow("SELECT status, resends FROM refresh_runs WHERE id = $1", run["id"])
        assert final["status"] == "succeeded"
        assert final["resends"] == 1
        assert len(await listed(ctx.pool)) == 28


async def test_a_run_that_never_progresses_is_closed(settings: Settings) -> None:
    async with pipeline(settings) as ctx:
        run, _ = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI)
        providers = await refresh.plan_refresh(ctx, run["id"])
        await refresh.sync_provider(ctx, run["id"], providers[0])
        never_planned, _ = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI, providers=["acme"])
        plans: list[int] = []
        for attempt in range(stalled.MAX_RESENDS + 1):
            await asyncio.sleep(0.05)
            actions = dict(
                await stalled.sweep_stalled_runs(
                    ctx, idle_seconds=0.01, send_plan=plans.append, send_sync=lambda r, p: None
                )
            )
            expected = "resent" if attempt < stalled.MAX_RESENDS else "closed"
            assert actions == {run["id"]: expected, never_planned["id"]: expected}
        assert plans == [never_planned["id"]] * stalled.MAX_RESENDS
        rows = {
            r["id"]: r
            for r in await ctx.pool.fetch(
                "SELECT id, status, error FROM refresh_runs WHERE id = ANY($1::bigint[])",
                [run["id"], never_planned["id"]],
            )
        }
        # The first provider's data stays committed; the rest are reported failed.
        assert rows[run["id"]]["status"] == "partial"
        assert rows[never_planned["id"]]["status"] == "failed"
        assert "no progress" in rows[never_planned["id"]]["error"]
        pending = await ctx.pool.fetchval(
            "SELECT count(*) FROM refresh_provider_runs WHERE run_id = $1 AND status = 'pending'", run["id"]
        )
        assert pending == 0
        # Nothing is left open, so the next trigger starts a new run.
        _, created = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI)
        assert created
