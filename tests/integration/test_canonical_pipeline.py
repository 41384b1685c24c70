"""Canonical models (models.dev's /models.json) through the refresh pipeline, against real
PostgreSQL and Redis with a local fake upstream: loading, diffing, the change log, links from
offerings to cards, and every way the models document can be missing or wrong."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import asyncpg

from shared.canonical import CANONICAL_PROVIDER
from shared.config import Settings
from shared.embedded import EMBEDDED_MODELS, document
from tests.support import CATALOG_NEW, fake_upstream, pipeline, refresh_inline

MODELS = "models-2026-07-02"


async def cards(pool: asyncpg.Pool) -> dict[str, Any]:
    rows = await pool.fetch("SELECT id, raw FROM canonical_models WHERE removed_at IS NULL")
    return {r["id"]: r["raw"] for r in rows}


async def links(pool: asyncpg.Pool) -> dict[str, tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT provider_id || '/' || model_id AS id, canonical_id, canonical_link FROM models "
        "WHERE canonical_id IS NOT NULL"
    )
    return {r["id"]: (r["canonical_id"], r["canonical_link"]) for r in rows}


async def provider_runs(pool: asyncpg.Pool, run_id: int) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM refresh_provider_runs WHERE run_id = $1", run_id)
    return {r["provider_id"]: r for r in rows}


async def test_models_document_loads_exactly_and_once(settings: Settings) -> None:
    api, models_body = document(CATALOG_NEW), document(MODELS)
    expected = json.loads(models_body)
    async with fake_upstream(api, etag='"a1"') as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.models_body, up.models_etag = models_body, '"m1"'
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded", run["error"]
        assert await cards(ctx.pool) == expected
        done = await provider_runs(ctx.pool, run["id"])
        assert (done[CANONICAL_PROVIDER]["status"], done[CANONICAL_PROVIDER]["added"]) == ("succeeded", len(expected))
        # Each card's benchmark results are rows of their own, in the card's order.
        assert await ctx.pool.fetchval("SELECT count(*) FROM canonical_benchmarks") == sum(
            len(c.get("benchmarks", [])) for c in expected.values()
        )
        added = await ctx.pool.fetchval(
            "SELECT count(*) FROM model_changes WHERE provider_id = $1 AND kind = 'added'", CANONICAL_PROVIDER
        )
        assert added == len(expected)

        # The second refresh asks with the ETags it was given, and writes nothing.
        seq = await ctx.pool.fetchval("SELECT max(seq) FROM model_changes")
        again = await refresh_inline(ctx)
        assert again["status"] == "unchanged"
        assert up.models_requests[-1][2].get("If-None-Match") == '"m1"'
        assert await ctx.pool.fetchval("SELECT max(seq) FROM model_changes") == seq

        # Forced: every provider and the models document compared again, nothing written.
        forced = await refresh_inline(ctx, force=True)
        assert forced["status"] == "succeeded", forced["error"]
        assert (forced["added"], forced["updated"], forced["removed"]) == (0, 0, 0)
        assert await ctx.pool.fetchval("SELECT max(seq) FROM model_changes") == seq


async def test_changed_score_is_one_field_level_change_even_when_the_catalog_is_not(settings: Settings) -> None:
    api, models_body = document(CATALOG_NEW), document(MODELS)
    doc = json.loads(models_body)
    cid = next(k for k, v in doc.items() if v.get("benchmarks"))
    async with fake_upstream(api, etag='"a1"') as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.models_body = models_body
        await refresh_inline(ctx)
        old_benchmarks = doc[cid]["benchmarks"]
        new_benchmarks = [dict(old_benchmarks[0], score=old_benchmarks[0]["score"] + 1.5), *old_benchmarks[1:]]
        doc[cid]["benchmarks"] = new_benchmarks
        up.models_body = json.dumps(doc).encode()
        run = await refresh_inline(ctx)  # api.json answers 304: only the models document is synced
        assert run["status"] == "succeeded", run["error"]
        assert set(await provider_runs(ctx.pool, run["id"])) == {CANONICAL_PROVIDER}
        changes = await ctx.pool.fetch("SELECT * FROM model_changes WHERE run_id = $1", run["id"])
        assert [(c["provider_id"], c["model_id"], c["kind"]) for c in changes] == [(CANONICAL_PROVIDER, cid, "updated")]
        assert changes[0]["fields"] == {"benchmarks.0.score": [old_benchmarks[0]["score"], new_benchmarks[0]["score"]]}
        assert (await cards(ctx.pool))[cid]["benchmarks"] == new_benchmarks
        score = await ctx.pool.fetchval(
            "SELECT score FROM canonical_benchmarks WHERE canonical_id = $1 AND ordinal = 1", cid
        )
        assert score == new_benchmarks[0]["score"]
        # The run keeps the catalog's source, so the next refresh still asks with its ETag.
        assert up.requests[-1][2].get("If-None-Match") == '"a1"'
        assert (await refresh_inline(ctx))["status"] == "unchanged"


async def test_upstream_without_models_document_refreshes_as_before(settings: Settings) -> None:
    async with fake_upstream(document(CATALOG_NEW)) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        run = await refresh_inline(ctx)  # /models.json answers 404
        assert run["status"] == "succeeded", run["error"]
        assert run["error"] is None
        assert CANONICAL_PROVIDER not in await provider_runs(ctx.pool, run["id"])
        assert await ctx.pool.fetchval("SELECT count(*) FROM canonical_models") == 0
        assert await links(ctx.pool) == {}
        assert len(up.models_requests) == 1


async def test_models_document_gone_removes_the_cards(settings: Settings) -> None:
    async with fake_upstream(document(CATALOG_NEW)) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.models_body = document(MODELS)
        await refresh_inline(ctx)
        assert await links(ctx.pool)
        up.models_body = None
        # The cards' integrity guard: losing over half of them is refused unless forced.
        stored = await cards(ctx.pool)
        refused = await refresh_inline(ctx)  # the catalog is the same: the run is unchanged, with why
        assert (refused["status"], refused["error"]) == (
            "unchanged",
            (await provider_runs(ctx.pool, refused["id"]))[CANONICAL_PROVIDER]["error"],
        )
        assert "force a refresh" in refused["error"]
        assert await cards(ctx.pool) == stored
        run = await refresh_inline(ctx, force=True)
        assert run["status"] == "succeeded", run["error"]
        assert await cards(ctx.pool) == {}
        assert run["removed"] == len(json.loads(document(MODELS)))
        assert await ctx.pool.fetchval("SELECT count(*) FROM canonical_benchmarks") == 0
        # Inferred links went with their cards; links the offerings name themselves stay.
        assert {kind for _, kind in (await links(ctx.pool)).values()} <= {"upstream"}


async def test_models_document_failing_fails_only_its_part(settings: Settings) -> None:
    async with fake_upstream(document(CATALOG_NEW)) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.models_body = b'{"lab/x": {"name": "X"'  # cut short
        run = await refresh_inline(ctx)
        assert run["status"] == "partial"
        failed = (await provider_runs(ctx.pool, run["id"]))[CANONICAL_PROVIDER]
        assert failed["status"] == "failed"
        assert "not a models.dev models document" in failed["error"]
        assert await ctx.pool.fetchval("SELECT count(*) FROM models WHERE removed_at IS NULL") > 5000
        assert await cards(ctx.pool) == {}

        up.models_body = document(MODELS)
        assert (await refresh_inline(ctx))["status"] == "succeeded"
        stored = await cards(ctx.pool)
        assert len(stored) == 231

        # 503 on every attempt: the run is partial, the catalog and the cards stay as they were.
        up.models_status = 503
        run = await refresh_inline(ctx, force=True)
        assert run["status"] == "partial"
        failed = (await provider_runs(ctx.pool, run["id"]))[CANONICAL_PROVIDER]
        assert "503" in failed["error"]
        assert await cards(ctx.pool) == stored
        assert len(up.models_requests) == 2 + settings.upstream_attempts
        # With the catalog unchanged too, the run is unchanged (the catalog's ETag stays the one
        # to ask with), and says why the models document was not read.
        up.etag = '"a1"'
        for _ in range(2):  # the first is given the ETag, the second asks with it
            run = await refresh_inline(ctx)
            assert run["status"] == "unchanged"
            assert "503" in run["error"]
        assert up.requests[-1][2].get("If-None-Match") == '"a1"'

        # Odd entries are left out, the others load; odd fields are kept as received.
        up.models_status = 200
        odd = json.loads(document(MODELS))
        odd["no-lab"] = {"name": "x"}
        first = next(iter(odd))
        odd[first] = {**odd[first], "benchmarks": [{"name": "Z", "score": "45%"}]}
        up.models_body = json.dumps(odd).encode()
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded", run["error"]
        now = await cards(ctx.pool)
        assert "no-lab" not in now and now[first]["benchmarks"] == [{"name": "Z", "score": "45%"}]
        assert await ctx.pool.fetchval("SELECT has_benchmarks FROM canonical_models WHERE id = $1", first) is False


async def test_link_rules_on_hand_written_examples(settings: Settings) -> None:
    catalog = {
        "acme": {
            "id": "acme",
            "name": "Acme",
            "env": [],
            "npm": "@ai-sdk/openai-compatible",
            "models": {
                # named upstream, by each of the three fields (the first present wins)
                "named": {"id": "named", "name": "Named", "canonical_id": "lab/alpha"},
                "named-2": {"id": "named-2", "name": "Named 2", "canonical_model_id": "lab/beta"},
                "named-3": {
                    "id": "named-3",
                    "name": "Named 3",
                    "base_model": "other/beta",
                    "canonical_id": "lab/gamma",
                },
                # inferred: the last path segment equals exactly one card's, case-insensitively
                "vendor/Alpha": {"id": "vendor/Alpha", "name": "Alpha via vendor"},
                "beta": {"id": "beta", "name": "Beta"},  # ambiguous: lab/beta and other/beta
                "delta-turbo": {"id": "delta-turbo", "name": "Delta Turbo"},  # no card ends so
            },
        }
    }
    models = {
        cid: {"id": cid, "name": cid, "benchmarks": []} for cid in ("lab/alpha", "lab/beta", "other/beta", "lab/gamma")
    }
    async with fake_upstream(json.dumps(catalog).encode()) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.models_body = json.dumps(models).encode()
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded", run["error"]
        assert await links(ctx.pool) == {
            "acme/named": ("lab/alpha", "upstream"),
            "acme/named-2": ("lab/beta", "upstream"),
            "acme/named-3": ("lab/gamma", "upstream"),
            "acme/vendor/Alpha": ("lab/alpha", "inferred"),
        }
        doc = json.loads(await ctx.pool.fetchval("SELECT api_doc FROM models WHERE model_id = 'vendor/Alpha'"))
        assert (doc["canonical_id"], doc["canonical_link"]) == ("lab/alpha", "inferred")
        assert "canonical_id" not in json.loads(
            await ctx.pool.fetchval("SELECT api_doc FROM models WHERE model_id = 'beta'")
        )

        # other/beta leaves: `beta` is no longer ambiguous; a new card makes delta-turbo's link.
        del models["other/beta"]
        models["z/DELTA-TURBO"] = {"id": "z/DELTA-TURBO", "name": "Delta"}
        up.models_body = json.dumps(models).encode()
        await refresh_inline(ctx)
        now = await links(ctx.pool)
        assert now["acme/beta"] == ("lab/beta", "inferred")
        assert now["acme/delta-turbo"] == ("z/DELTA-TURBO", "inferred")
        assert now["acme/named-3"] == ("lab/gamma", "upstream")


async def test_links_on_the_real_catalog(settings: Settings) -> None:
    """The counts the note reports; an inferred link is checked against the card it points to."""
    api, models_body = json.loads(document(CATALOG_NEW)), json.loads(document(MODELS))
    async with fake_upstream(document(CATALOG_NEW)) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.models_body = document(MODELS)
        await refresh_inline(ctx)
        found = await links(ctx.pool)
    kinds = Counter(kind for _, kind in found.values())
    # models.dev's api.json of that day names no card itself: every link is inferred.
    assert kinds["upstream"] == 0
    by_segment: dict[str, list[str]] = {}
    for cid in models_body:
        by_segment.setdefault(cid.rsplit("/", 1)[-1].lower(), []).append(cid)
    expected = {
        f"{pid}/{mid}": by_segment[mid.rsplit("/", 1)[-1].lower()][0]
        for pid, p in api.items()
        for mid in p["models"]
        if len(by_segment.get(mid.rsplit("/", 1)[-1].lower(), [])) == 1
    }
    assert {k: v for k, (v, _) in found.items()} == expected
    assert kinds["inferred"] == len(expected) > 2000


async def test_embedded_catalog_brings_its_models_document(settings: Settings) -> None:
    async with pipeline(settings, modelsdev_url="http://127.0.0.1:9/api.json", upstream_attempts=1) as ctx:
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded", run["error"]
        assert "upstream unreachable" in run["fallback_reason"]
        assert await cards(ctx.pool) == json.loads(document(EMBEDDED_MODELS))
        assert await ctx.pool.fetchval("SELECT count(*) FROM model_benchmark_results") > 0


async def test_an_empty_models_document_is_no_cards(settings: Settings) -> None:
    """Another modelmeta with no cards serves an empty list: nothing to sync while none is stored;
    once some are, it removes them like a document that went away."""
    async with fake_upstream(document(CATALOG_NEW)) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.models_body = b"{}"
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded", run["error"]
        assert CANONICAL_PROVIDER not in await provider_runs(ctx.pool, run["id"])
        up.models_body = document(MODELS)
        await refresh_inline(ctx)
        assert len(await cards(ctx.pool)) == 231
        up.models_body = b"{}"
        assert "force a refresh" in (await refresh_inline(ctx))["error"]  # the guard
        run = await refresh_inline(ctx, force=True)
        assert run["status"] == "succeeded", run["error"]
        assert (run["removed"], await cards(ctx.pool)) == (231, {})
