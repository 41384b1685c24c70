"""Several providers synced in one transaction (refresh.sync_providers, issue 14): the same catalog,
change log and versions as one provider at a time, one catalog version per batch, a malformed
slice failing alone, a redelivered batch writing nothing."""

from __future__ import annotations

import json
from collections import Counter

import asyncpg
import pytest

from shared import refresh
from shared.config import Settings
from shared.db import runs
from shared.embedded import document
from shared.enums import SyncStatus, Trigger
from shared.resources import RefreshContext
from tests.support import CATALOG_NEW, CATALOG_OLD, fake_upstream, flat_models, listed, pipeline


async def _refresh_batched(ctx: RefreshContext, batch: int = 7) -> tuple[asyncpg.Record, list[list[str]]]:
    """One whole run whose providers are synced `batch` to a transaction; the closed run and its batches."""
    run, _ = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI)
    providers = await refresh.plan_refresh(ctx, run["id"])
    batches = [providers[i : i + batch] for i in range(0, len(providers), batch)]
    for ids in batches:
        await refresh.sync_providers(ctx, run["id"], ids)
    final = await runs.get_run(ctx.pool, run["id"])
    assert final is not None
    return final, batches


async def test_batches_write_what_one_provider_at_a_time_writes(settings: Settings) -> None:
    old_body, new_body = document(CATALOG_OLD), document(CATALOG_NEW)
    async with fake_upstream(old_body, etag='"v1"') as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        run1, _ = await _refresh_batched(ctx)
        assert run1["status"] == "succeeded", run1["error"]
        assert await listed(ctx.pool) == flat_models(json.loads(old_body))
        up.body, up.etag = new_body, '"v2"'
        run2, batches = await _refresh_batched(ctx)
        assert run2["status"] == "succeeded", run2["error"]
        new = flat_models(json.loads(new_body))
        assert await listed(ctx.pool) == new
        # The same counts as test_two_real_catalogs_exact_with_true_change_log, one provider at a time.
        assert (run2["added"], run2["removed"], run2["updated"]) == (2982, 759, 1540)
        changes = await ctx.pool.fetch(
            "SELECT provider_id, kind, catalog_version FROM model_changes WHERE run_id = $1", run2["id"]
        )
        assert Counter(c["kind"] for c in changes) == {"added": 2982, "removed": 759, "updated": 1540}
        # One catalog version per batch, shared by its providers' changes.
        version_of = {pid: i for i, ids in enumerate(batches) for pid in ids}
        by_version: dict[int, set[int]] = {}
        for c in changes:
            by_version.setdefault(c["catalog_version"], set()).add(version_of[c["provider_id"]])
        assert all(len(b) == 1 for b in by_version.values())
        assert len(by_version) == len({version_of[c["provider_id"]] for c in changes})
        # The versions (history, issue 13): one current version per listed model, as listed.
        current = await ctx.pool.fetch(
            "SELECT provider_id, model_id, raw FROM model_versions WHERE valid_to IS NULL AND removed_at IS NULL"
        )
        assert {(r["provider_id"], r["model_id"]): r["raw"] for r in current} == new
        stamped = await ctx.pool.fetchval(
            "SELECT count(*) FROM catalog_versions WHERE version = ANY($1::bigint[])", list(by_version)
        )
        assert stamped == len(by_version)


async def test_a_malformed_slice_fails_alone_and_a_redelivered_batch_writes_nothing(settings: Settings) -> None:
    body = document(CATALOG_OLD)
    async with fake_upstream(body) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        run, _ = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI)
        providers = await refresh.plan_refresh(ctx, run["id"])
        bad = providers[len(providers) // 2]
        await ctx.pool.execute(
            "UPDATE refresh_provider_runs SET slice = $3 WHERE run_id = $1 AND provider_id = $2",
            run["id"],
            bad,
            b'{"name": "x", "models": 5}',
        )
        outcomes = await refresh.sync_providers(ctx, run["id"], providers)
        assert Counter(o.status for o in outcomes) == {SyncStatus.SUCCEEDED: len(providers) - 1, SyncStatus.FAILED: 1}
        closed = await runs.get_run(ctx.pool, run["id"])
        assert closed is not None
        assert closed["status"] == "partial"
        assert closed["providers_failed"] == 1
        assert {pid for pid, _ in await listed(ctx.pool)} == set(providers) - {bad}
        assert len(await ctx.pool.fetch("SELECT DISTINCT catalog_version FROM model_changes")) == 1

        # Redelivered: every provider-run is done, nothing is written, the run stays as closed.
        before = await ctx.pool.fetchval("SELECT max(xmin::text::bigint) FROM models")
        again = await refresh.sync_providers(ctx, run["id"], providers)
        assert {o.status for o in again} == {SyncStatus.SKIPPED}
        assert await ctx.pool.fetchval("SELECT max(xmin::text::bigint) FROM models") == before


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        (5, [1] * 5),
        (64, [1] * 64),
        (65, [2] * 32 + [1]),
        (1000, [16] * 62 + [8]),
        (10_000, [50] * 200),
    ],
)
def test_sync_batches(n: int, sizes: list[int]) -> None:
    providers = ["@models", *(f"p{i:05}" for i in range(n))]
    batches = refresh.sync_batches(providers)
    assert batches[0] == ["@models"]
    assert [len(b) for b in batches[1:]] == sizes
    assert [p for b in batches for p in b] == providers
