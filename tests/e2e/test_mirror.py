"""One modelmeta mirroring another, provider by provider, within a shared rate budget."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis
from aiohttp import web

from shared.config import RateLimit, Settings
from shared.embedded import document
from tests.support import (
    CATALOG_NEW,
    CATALOG_OLD,
    SAMPLE,
    CountingProxy,
    cli,
    connection,
    counting_proxy,
    create_database,
    database_name,
    drop_database,
    env_for,
    max_in_window,
    pipeline,
    refresh_inline,
    run_row,
    wait_until,
    web_process,
    worker,
)


@asynccontextmanager
async def extra_database(template: Settings, name: str) -> AsyncIterator[Settings]:
    """A second database (and Redis prefix) cloned from this test's fresh one."""
    source = database_name(template.database_url)
    dsn = await create_database(f"{source}_{name}", template=source)
    try:
        yield dataclasses.replace(template, database_url=dsn, redis_prefix=f"{template.redis_prefix}-{name}")
    finally:
        await drop_database(dsn)


MODELS = "models-2026-07-02"


async def links(dsn: str) -> dict[str, tuple[str, str]]:
    """Each linked offering's card and the kind of its link."""
    async with connection(dsn) as conn:
        rows = await conn.fetch(
            "SELECT provider_id || '/' || model_id, canonical_id, canonical_link FROM models "
            "WHERE canonical_id IS NOT NULL"
        )
    return {r[0]: (r[1], r[2]) for r in rows}


async def cards(dsn: str) -> dict[str, Any]:
    async with connection(dsn) as conn:
        rows = await conn.fetch("SELECT id, raw::text FROM canonical_models WHERE removed_at IS NULL")
    return {r[0]: json.loads(r[1]) for r in rows}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def change_set(feed: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(c["id"], c["kind"], json.dumps(c["fields"], sort_keys=True)) for c in feed}


async def feed_of_run(dsn: str, run_id: int) -> list[dict[str, Any]]:
    async with connection(dsn) as conn:
        rows = await conn.fetch(
            "SELECT provider_id || '/' || model_id AS id, kind, fields::text FROM model_changes WHERE run_id = $1",
            run_id,
        )
    return [{"id": r[0], "kind": r[1], "fields": json.loads(r[2]) if r[2] else None} for r in rows]


async def test_a_mirror_of_a_mirror_holds_the_same_catalog(settings: Settings, tmp_path: Path) -> None:
    new_body, old_body = document(CATALOG_NEW), document(CATALOG_OLD)
    new_path, old_path = tmp_path / "new.json", tmp_path / "old.json"
    new_path.write_bytes(new_body)
    old_path.write_bytes(old_body)
    # models.dev's models document beside both: the cards travel through each hop too.
    (tmp_path / "models.json").write_bytes(document(MODELS))
    upstream = dataclasses.replace(settings, modelsdev_url=f"file://{new_path}")
    async with extra_database(settings, "b") as b, extra_database(settings, "c") as c:
        async with pipeline(upstream) as ctx:
            await refresh_inline(ctx)
        async with web_process(env_for(upstream), tmp_path / "web-a.log") as web_a:
            fast = RateLimit(10_000, 1.0)  # in-process there is no actor to retry a long wait later
            b = dataclasses.replace(b, modelsdev_url=web_a, upstream_rate_limit=fast)
            async with pipeline(b) as ctx_b:
                run_b1 = await refresh_inline(ctx_b)
                assert run_b1["status"] == "succeeded", run_b1["error"]
            async with web_process(env_for(b), tmp_path / "web-b.log") as web_b:
                doc_a = get_json(f"{web_a}/api.json")
                assert doc_a == json.loads(new_body)
                assert get_json(f"{web_b}/api.json") == doc_a
                assert get_json(f"{web_a}/models.json") == json.loads(document(MODELS))
                assert get_json(f"{web_b}/models.json") == get_json(f"{web_a}/models.json")
                assert await links(b.database_url) == await links(upstream.database_url) != {}
                c = dataclasses.replace(c, modelsdev_url=web_b + "/api/v1", upstream_rate_limit=fast)
                async with pipeline(c) as ctx_c:
                    assert (await refresh_inline(ctx_c))["status"] == "succeeded"
                    # Unchanged upstream: one request (the provider list, answered 304), nothing written.
                    again = await refresh_inline(ctx_c)
                    assert again["status"] == "unchanged"

                # The upstream moves to the older catalog; each hop follows.
                async with pipeline(dataclasses.replace(upstream, modelsdev_url=f"file://{old_path}")) as ctx:
                    run_a2 = await refresh_inline(ctx, force=True)
                    assert run_a2["status"] == "succeeded"
                async with pipeline(b) as ctx_b:
                    run_b2 = await refresh_inline(ctx_b)
                    assert run_b2["status"] == "succeeded", run_b2["error"]
                doc_a = get_json(f"{web_a}/api.json")
                assert doc_a == json.loads(old_body)
                assert get_json(f"{web_b}/api.json") == doc_a
                feed_a = await feed_of_run(upstream.database_url, run_a2["id"])
                feed_b = await feed_of_run(b.database_url, run_b2["id"])
                assert len(feed_a) == 2982 + 759 + 1540
                assert change_set(feed_b) == change_set(feed_a)
                async with pipeline(c) as ctx_c:
                    assert (await refresh_inline(ctx_c))["status"] == "succeeded"
                    from shared.db.api_reads import catalog_document

                    assert json.loads(await catalog_document(ctx_c.pool)) == doc_a
                    removed = await ctx_c.pool.fetchval("SELECT count(*) FROM models WHERE removed_at IS NOT NULL")
                    assert removed == 2982  # what the older catalog does not have
                assert await links(c.database_url) == await links(upstream.database_url)
                assert await cards(c.database_url) == json.loads(document(MODELS))


@asynccontextmanager
async def mirror_of(settings: Settings, tmp_path: Path, source: Path) -> AsyncIterator[tuple[Settings, CountingProxy]]:
    """A first modelmeta loaded from `source` whose web process answers behind a counting proxy, and
    the settings of a second, empty one (its own database and Redis prefix) to mirror it."""
    upstream = dataclasses.replace(settings, modelsdev_url=f"file://{source}")
    async with extra_database(settings, "mirror") as mirror:  # cloned while still empty
        async with pipeline(upstream) as ctx:
            await refresh_inline(ctx)
        async with (
            web_process(env_for(upstream), tmp_path / "web-a.log") as web_a,
            counting_proxy(web_a) as proxy,
        ):
            yield mirror, proxy


async def test_three_workers_keep_to_the_upstream_budget(settings: Settings, tmp_path: Path) -> None:
    body = document(CATALOG_NEW)
    path = tmp_path / "new.json"
    path.write_bytes(body)
    async with mirror_of(settings, tmp_path, path) as (mirror, proxy):
        env = env_for(mirror, MODELSDEV_URL=proxy.url, UPSTREAM_RATE_LIMIT="20/second")
        logs = [tmp_path / f"worker{i}.log" for i in range(3)]
        with worker(env, logs[0]), worker(env, logs[1]), worker(env, logs[2]):
            await asyncio.sleep(2.0)  # let the workers boot
            started = time.time()
            done = await asyncio.to_thread(cli, ["refresh", "--wait"], env, 300)
            assert done.returncode == 0, done.stdout + done.stderr
        run = await run_row(mirror.database_url)
        assert run is not None
    times = [t for t, _, _ in proxy.times if t >= started]
    ideal = len(times) / 20
    print(
        f"budget 20/s, 3 workers: {len(times)} requests, busiest second {max_in_window(times)}, "
        f"run {run['seconds']:.2f} s, ideal {ideal:.2f} s ({run['seconds'] / ideal:.2f}x)"
    )
    assert max_in_window(times) <= 20, max_in_window(times)
    assert run["seconds"] <= 1.5 * ideal, (run["seconds"], ideal, len(times))
    assert len(times) >= 148  # the list and at least one page for each of 147 providers


async def test_a_429_pauses_every_worker(settings: Settings, tmp_path: Path) -> None:
    paused_at: list[float] = []

    async def once_429(request: web.Request, n: int) -> web.StreamResponse | None:
        if n == 2:
            paused_at.append(time.time())
            return web.Response(status=429, headers={"Retry-After": "3"})
        return None

    async with mirror_of(settings, tmp_path, SAMPLE) as (mirror, proxy):
        proxy.intercept = once_429
        # A budget whose window (63 s) keeps every grant of the run for the check below to read.
        env = env_for(mirror, MODELSDEV_URL=proxy.url, UPSTREAM_RATE_LIMIT="100/minute")
        keys = f"{mirror.redis_prefix}:ratelimit:{urlsplit(proxy.url).netloc}"
        async with redis.Redis.from_url(mirror.redis_url) as r:
            with worker(env, tmp_path / "w1.log"), worker(env, tmp_path / "w2.log"):
                await asyncio.sleep(2.0)
                refresh = asyncio.create_task(asyncio.to_thread(cli, ["refresh", "--wait"], env, 120))
                # The pause as the limiter keeps it (until when, in ms of the Redis server's clock,
                # which is this machine's: grants and arrivals are compared below); it outlives the
                # 3 s it holds by a second, so polling cannot miss it.
                pause = asyncio.create_task(wait_until(lambda: r.get(f"{keys}:paused"), 60, 0.005, "the pause"))
                await asyncio.wait({refresh, pause}, return_when=asyncio.FIRST_COMPLETED)
                done = await refresh
                assert done.returncode == 0, done.stdout + done.stderr
                assert pause.done(), "the refresh ended without the host paused"
                until_ms = await pause
            grants = [score / 1000 for _, score in await r.zrange(f"{keys}:window", 0, -1, withscores=True)]
    assert paused_at, proxy.times
    until = int(until_ms) / 1000
    paused = until - 3.0  # when the worker that got the 429 paused the host
    assert paused_at[0] - 0.01 <= paused <= paused_at[0] + 5, (paused_at[0], paused)
    # No worker was granted a slot while the host was paused ...
    assert not [g for g in grants if paused < g < until], (paused, until, grants)
    # ... so what reached the upstream during the pause had been granted before it (sent by another
    # worker and not recallable), and asking resumed once it ended.
    times = sorted(t for t, _, _ in proxy.times)
    during = [t for t in times if paused < t < until]
    granted_before = sum(1 for g in grants if g <= paused)
    assert len(during) <= granted_before - sum(1 for t in times if t <= paused), (during, granted_before)
    assert [t for t in times if t >= until], "nothing was asked after the pause"
    assert [g for g in grants if g >= until]


async def test_one_failing_provider_leaves_the_others_and_the_next_refresh_completes_it(
    settings: Settings, tmp_path: Path
) -> None:
    broken = {"on": True}
    hits = {"n": 0}

    async def break_acme(request: web.Request, n: int) -> web.StreamResponse | None:
        if broken["on"] and request.path.startswith("/api/v1/providers/acme"):
            hits["n"] += 1
            if hits["n"] <= 2:
                return web.Response(status=500, text="boom")
            await asyncio.sleep(3)  # then time out
            return web.Response(status=504)
        return None

    async with mirror_of(settings, tmp_path, SAMPLE) as (mirror, proxy):
        proxy.intercept = break_acme
        env = env_for(
            mirror,
            MODELSDEV_URL=proxy.url,
            UPSTREAM_TIMEOUT="1",
            UPSTREAM_ATTEMPTS="2",
            PROVIDER_MAX_ATTEMPTS="3",
        )
        with worker(env, tmp_path / "w.log"):
            await asyncio.sleep(1.5)
            first = await asyncio.to_thread(cli, ["refresh", "--wait", "--json"], env, 120)
            assert first.returncode == 1, first.stdout + first.stderr
            run = json.loads(first.stdout.strip().splitlines()[-1])
            assert run["status"] == "partial"
            detail = json.loads(cli(["run", str(run["id"]), "--json"], env).stdout)
            by_id = {p["provider_id"]: p for p in detail["providers"]}
            assert by_id["acme"]["status"] == "failed"
            assert by_id["acme"]["attempts"] == 3
            assert by_id["acme"]["error"]
            assert all(p["status"] == "succeeded" for k, p in by_id.items() if k != "acme")
            async with connection(mirror.database_url) as conn:
                per_provider = dict(await conn.fetch("SELECT provider_id, count(*) FROM models GROUP BY 1"))
            assert "acme" not in per_provider and len(per_provider) == 4

            broken["on"] = False
            second = await asyncio.to_thread(cli, ["refresh", "--wait", "--json"], env, 120)
            assert second.returncode == 0, second.stdout + second.stderr
            run2 = json.loads(second.stdout.strip().splitlines()[-1])
            assert run2["status"] == "succeeded"
            assert run2["counts"]["providers_total"] == 1
            assert run2["counts"]["added"] == 7
