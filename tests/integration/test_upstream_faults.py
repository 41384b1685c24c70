"""Upstream faults end as a retry or a clear run error, never as partial data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from shared import refresh
from shared.config import Settings
from shared.embedded import EMBEDDED_URL, embedded_catalog
from shared.enums import Trigger
from shared.resources import RefreshContext
from tests.support import SAMPLE, fake_upstream, flat_models, free_port, listed, pipeline, refresh_inline

SAMPLE_BODY = SAMPLE.read_bytes()
SAMPLE_MODELS = flat_models(json.loads(SAMPLE_BODY))
SMALLER = json.dumps(dict(list(json.loads(SAMPLE_BODY).items())[:3])).encode()


def status(code: int, headers: dict[str, str] | None = None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, headers=headers, text="nope")

    return handler


def body(data: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="application/json")

    return handler


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(body=SAMPLE_BODY)


async def test_500_then_success(settings: Settings) -> None:
    async with fake_upstream(SAMPLE_BODY) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.script = [status(500)]
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded"
        assert len(up.requests) == 2
        assert await listed(ctx.pool) == SAMPLE_MODELS


async def test_429_retry_after_is_honoured(settings: Settings) -> None:
    async with fake_upstream(SAMPLE_BODY) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.script = [status(429, {"Retry-After": "1"})]
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded"
        assert up.requests[1][0] - up.requests[0][0] >= 0.95


async def test_long_retry_after_becomes_a_later_retry(settings: Settings) -> None:
    from shared.errors import RateLimited

    async with fake_upstream(SAMPLE_BODY) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        up.script = [status(429, {"Retry-After": "120"})]
        run, _ = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI)
        with pytest.raises(RateLimited):
            await refresh.plan_refresh(ctx, run["id"])


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ([slow, slow], "TimeoutError"),
        ([body(SAMPLE_BODY[: len(SAMPLE_BODY) // 2])], "not a models.dev document"),
        ([body(b'{"acme": {"id": "acme", "name": "Acme", "models": [1, 2]}}')], "not a models.dev document"),
        ([body(b"x" * 5000)], "not a models.dev document"),
        ([status(404)], "HTTP 404"),
        ([status(502), status(503)], "HTTP 503 after 2 attempts"),
    ],
    ids=["timeout", "truncated", "wrong-shape", "not-json", "404", "5xx"],
)
async def test_fault_fails_the_run_and_changes_nothing(settings: Settings, script: list, error: str) -> None:  # type: ignore[type-arg]
    async with fake_upstream(SAMPLE_BODY) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        assert (await refresh_inline(ctx))["status"] == "succeeded"
        version = await ctx.pool.fetchval("SELECT version FROM catalog_state")
        up.script = list(script)
        run = await refresh_inline(ctx, force=True)
        assert run["status"] == "failed"
        assert error in run["error"]
        assert await listed(ctx.pool) == SAMPLE_MODELS
        assert await ctx.pool.fetchval("SELECT version FROM catalog_state") == version


async def test_body_over_the_size_cap(settings: Settings) -> None:
    async with (
        fake_upstream(SAMPLE_BODY) as up,
        pipeline(settings, modelsdev_url=up.url, upstream_max_bytes=1000) as ctx,
    ):
        run = await refresh_inline(ctx)
        assert run["status"] == "failed"
        assert "over 1000" in run["error"]
        assert await listed(ctx.pool) == {}


async def _catalog_size(ctx: RefreshContext) -> tuple[int, int]:
    providers = await ctx.pool.fetchval("SELECT count(*) FROM providers WHERE removed_at IS NULL")
    models = await ctx.pool.fetchval("SELECT count(*) FROM models WHERE removed_at IS NULL")
    return providers, models


async def test_unreachable_with_empty_database_loads_the_embedded_catalog(settings: Settings) -> None:
    url = f"http://127.0.0.1:{free_port()}/api.json"
    async with pipeline(settings, modelsdev_url=url) as ctx:
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded"
        assert "upstream unreachable" in run["fallback_reason"]
        assert run["source_url"] == EMBEDDED_URL
        assert await _catalog_size(ctx) == (147, 5276)
        assert await listed(ctx.pool) == flat_models(json.loads(embedded_catalog()))
    # When the upstream is back, its document replaces the stand-in, however much smaller it is
    # (the integrity guard protects an upstream's data, not the embedded catalog).
    async with fake_upstream(SAMPLE_BODY) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded", run["error"]
        assert run["fallback_reason"] is None
        assert await listed(ctx.pool) == SAMPLE_MODELS
        # ... and so do its cards: this upstream has no models document, and the cards' guard gives
        # way as the catalog's does, for what the embedded catalog stood in with.
        assert await ctx.pool.fetchval("SELECT count(*) FROM canonical_models WHERE removed_at IS NULL") == 0


async def test_disabled_upstream_fetches_nothing(settings: Settings) -> None:
    """MODELSDEV_ENABLED=false: an empty database gets the embedded catalog; later refreshes
    keep what is stored; the upstream is never asked."""
    async with (
        fake_upstream(SAMPLE_BODY) as up,
        pipeline(settings, modelsdev_url=up.url, upstream_enabled=False) as ctx,
    ):
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded"
        assert run["source_url"] == EMBEDDED_URL
        assert "MODELSDEV_ENABLED=false" in run["fallback_reason"]
        assert await _catalog_size(ctx) == (147, 5276)
        version = await ctx.pool.fetchval("SELECT version FROM catalog_state")
        again = await refresh_inline(ctx, force=True)
        assert again["status"] == "unchanged"
        assert await ctx.pool.fetchval("SELECT version FROM catalog_state") == version
        assert up.requests == []


async def test_document_upstream_is_asked_for_every_model_type(settings: Settings) -> None:
    async with fake_upstream(SAMPLE_BODY, etag='"v1"') as up:
        async with pipeline(settings, modelsdev_url=f"{up.url}?region=eu") as ctx:
            run = await refresh_inline(ctx)
            assert run["status"] == "succeeded"
            assert run["source_url"] == f"{up.url}?region=eu&type=all"
            # The conditional GET of the next refresh asks for the same document.
            assert (await refresh_inline(ctx))["status"] == "unchanged"
        paths = [path for _, path, _ in up.requests]
        assert paths == ["/api.json?region=eu&type=all"] * 2
        assert up.requests[1][2].get("If-None-Match") == '"v1"'


async def test_unreachable_with_full_database_changes_nothing(settings: Settings) -> None:
    async with fake_upstream(SMALLER) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
        before = await listed(ctx.pool)
    url = f"http://127.0.0.1:{free_port()}/api.json"
    async with pipeline(settings, modelsdev_url=url) as ctx:
        run = await refresh_inline(ctx)
        assert run["status"] == "failed"
        assert "ClientConnectorError" in run["error"], run["error"]
        assert await listed(ctx.pool) == before


async def test_integrity_guard_refuses_a_shrunken_document_unless_forced(settings: Settings) -> None:
    tiny = json.dumps({"acme": json.loads(SAMPLE_BODY)["acme"]}).encode()
    async with fake_upstream(SAMPLE_BODY) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
        up.body = tiny
        run = await refresh_inline(ctx)
        assert run["status"] == "failed"
        assert "under half" in run["error"]
        assert await listed(ctx.pool) == SAMPLE_MODELS
        forced = await refresh_inline(ctx, force=True)
        assert forced["status"] == "succeeded"
        assert await listed(ctx.pool) == flat_models(json.loads(tiny))


async def test_sync_delivered_twice_writes_once(settings: Settings) -> None:
    async with pipeline(settings) as ctx:
        run, _ = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI)
        providers = await refresh.plan_refresh(ctx, run["id"])
        # plan_refresh redelivered: the same providers to send again, no second fan-out.
        assert await refresh.plan_refresh(ctx, run["id"]) == providers
        first = await refresh.sync_provider(ctx, run["id"], providers[0])
        again = await refresh.sync_provider(ctx, run["id"], providers[0])
        assert first.status == "succeeded"
        assert first.added > 0
        assert again.status == "skipped"
        both = await asyncio.gather(*(refresh.sync_provider(ctx, run["id"], providers[1]) for _ in range(2)))
        assert sorted(o.status for o in both) == ["skipped", "succeeded"]
        rows = await ctx.pool.fetchval("SELECT count(*) FROM model_changes")
        assert rows == first.added + max(o.added for o in both)


async def test_one_bad_provider_leaves_the_others_and_reports_partial(settings: Settings) -> None:
    doc = json.loads(SAMPLE_BODY)
    doc["acme"]["models"]["acme-large-3"]["limit"] = {"context": "lots"}
    async with fake_upstream(json.dumps(doc).encode()) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        run = await refresh_inline(ctx)
        # The whole-document validation refuses it before any provider is touched.
        assert run["status"] == "failed"
        assert "limit.context" in run["error"]
        assert await listed(ctx.pool) == {}


async def test_failing_provider_is_retried_then_marked_failed(settings: Settings) -> None:
    async with pipeline(settings, provider_max_attempts=2) as ctx:
        run, _ = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI)
        providers = await refresh.plan_refresh(ctx, run["id"])
        bad, good = providers[0], providers[1:]
        for pid in good:
            await refresh.sync_provider(ctx, run["id"], pid)
        assert await refresh.record_failure(ctx, run["id"], bad, "TimeoutError: upstream") == 1
        assert await refresh.record_failure(ctx, run["id"], bad, "TimeoutError: upstream") is None
        final = await ctx.pool.fetchrow("SELECT status, error FROM refresh_runs WHERE id = $1", run["id"])
        assert final["status"] == "partial"
        detail = await ctx.pool.fetchrow(
            "SELECT status, attempts, error FROM refresh_provider_runs WHERE run_id = $1 AND provider_id = $2",
            run["id"],
            bad,
        )
        assert detail["status"] == "failed"
        assert detail["attempts"] == 2
        assert "TimeoutError" in detail["error"]
        # The next refresh completes the failed provider.
        again = await refresh_inline(ctx)
        assert again["status"] == "succeeded"
        assert again["providers_total"] == 1
        assert await listed(ctx.pool) == SAMPLE_MODELS


async def test_upstream_going_away_mid_download(settings: Settings) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(SAMPLE_BODY))})
        await resp.prepare(request)
        await resp.write(SAMPLE_BODY[: len(SAMPLE_BODY) // 3])
        assert request.transport is not None
        request.transport.close()
        return resp

    async with fake_upstream(SAMPLE_BODY) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        # Cut once: the retry gets the whole document.
        up.script = [cut]
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded"
        assert await listed(ctx.pool) == SAMPLE_MODELS
        # Cut on every attempt: a clear error, and nothing changes.
        up.script = [cut, cut]
        run = await refresh_inline(ctx, force=True)
        assert run["status"] == "failed"
        assert "after 2 attempts" in run["error"]
        assert await listed(ctx.pool) == SAMPLE_MODELS
