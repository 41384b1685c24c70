"""The refresh pipeline against real PostgreSQL and Redis, with a local fake upstream."""

from __future__ import annotations

import json
from collections import Counter

from shared.config import Settings
from shared.embedded import document
from tests.support import (
    CATALOG_NEW,
    CATALOG_OLD,
    SAMPLE,
    fake_upstream,
    flat_models,
    leaf_diff,
    listed,
    pipeline,
    refresh_inline,
)


async def test_sample_loads_exactly(settings: Settings) -> None:
    async with pipeline(settings) as ctx:
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded"
        doc = json.loads(SAMPLE.read_bytes())
        assert await listed(ctx.pool) == flat_models(doc)
        assert run["added"] == len(flat_models(doc))
        again = await refresh_inline(ctx)
        assert again["status"] == "unchanged"


async def test_two_real_catalogs_exact_with_true_change_log(settings: Settings) -> None:
    old_body, new_body = document(CATALOG_OLD), document(CATALOG_NEW)
    old, new = json.loads(old_body), json.loads(new_body)
    async with fake_upstream(old_body, etag='"v1"') as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        run1 = await refresh_inline(ctx)
        assert run1["status"] == "succeeded", run1["error"]
        assert await listed(ctx.pool) == flat_models(old)
        assert await ctx.pool.fetchval("SELECT count(*) FROM providers WHERE removed_at IS NULL") == len(old)

        up.body, up.etag = new_body, '"v2"'
        run2 = await refresh_inline(ctx)
        assert run2["status"] == "succeeded", run2["error"]
        assert await listed(ctx.pool) == flat_models(new)
        assert await ctx.pool.fetchval("SELECT count(*) FROM providers WHERE removed_at IS NULL") == len(new)

        a, b = flat_models(old), flat_models(new)
        changes = await ctx.pool.fetch(
            "SELECT provider_id, model_id, kind, fields FROM model_changes WHERE run_id = $1", run2["id"]
        )
        kinds = Counter(c["kind"] for c in changes)
        assert kinds == {"added": 2982, "removed": 759, "updated": 1540}
        assert (run2["added"], run2["removed"], run2["updated"]) == (2982, 759, 1540)
        for c in changes:
            key = (c["provider_id"], c["model_id"])
            if c["kind"] == "added":
                assert key in b
                assert key not in a
            elif c["kind"] == "removed":
                assert key in a
                assert key not in b
            else:
                assert c["fields"] == leaf_diff(a[key], b[key]), key
        assert {(c["provider_id"], c["model_id"]) for c in changes if c["kind"] == "updated"} == {
            k for k in a.keys() & b.keys() if a[k] != b[k]
        }
        removed = await ctx.pool.fetchval("SELECT count(*) FROM models WHERE removed_at IS NOT NULL")
        assert removed == 759

        # The same document again: a 304, nothing written.
        before = await ctx.pool.fetchval("SELECT max(xmin::text::bigint) FROM models")
        n_changes = await ctx.pool.fetchval("SELECT count(*) FROM model_changes")
        run3 = await refresh_inline(ctx)
        assert run3["status"] == "unchanged"
        assert up.requests[-1][2].get("If-None-Match") == '"v2"'
        # Forced: fetched again, every provider compared by hash, still nothing written.
        run4 = await refresh_inline(ctx, force=True)
        assert run4["status"] == "succeeded"
        assert (run4["added"], run4["updated"], run4["removed"]) == (0, 0, 0)
        assert await ctx.pool.fetchval("SELECT max(xmin::text::bigint) FROM models") == before
        assert await ctx.pool.fetchval("SELECT count(*) FROM model_changes") == n_changes


async def test_same_document_without_etag_writes_nothing(settings: Settings) -> None:
    body = SAMPLE.read_bytes()
    async with fake_upstream(body) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        assert (await refresh_inline(ctx))["status"] == "succeeded"
        n = await ctx.pool.fetchval("SELECT count(*) FROM model_changes")
        run = await refresh_inline(ctx)
        assert run["status"] == "unchanged"
        assert run["providers_total"] == 0
        assert await ctx.pool.fetchval("SELECT count(*) FROM model_changes") == n


async def test_a_redelivered_plan_closes_a_run_that_nothing_holds_open(settings: Settings) -> None:
    """The worker that finished a run's last provider-run died before closing it, and the plan
    message comes again: with nothing pending, plan_refresh closes the run instead of leaving it
    to the stalled-run sweep."""
    from shared import refresh
    from shared.db import runs

    async with pipeline(settings) as ctx:
        done = await refresh_inline(ctx)
        assert done["status"] == "succeeded"
        await ctx.pool.execute(
            "UPDATE refresh_runs SET status = 'running', finished_at = NULL WHERE id = $1", done["id"]
        )
        assert await refresh.plan_refresh(ctx, done["id"]) == []
        again = await runs.get_run(ctx.pool, done["id"])
        assert again is not None and again["status"] == "succeeded"
