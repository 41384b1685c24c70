"""Read-your-refresh across two web processes: once a run reports succeeded, neither serves old data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import redis

from shared.config import Settings
from shared.embedded import document
from tests.support import (
    ADMIN,
    CATALOG_NEW,
    CATALOG_OLD,
    REDIS_URL,
    env_for,
    fake_upstream,
    flat_models,
    free_port,
    pipeline,
    procfile_argv,
    refresh_inline,
    start,
    stop,
    wait_ready,
    worker,
)


async def price(session: aiohttp.ClientSession, base: str, model: str) -> Any:
    async with session.get(f"{base}/api/v1/models/{model}") as r:
        assert r.status == 200, await r.text()
        return (await r.json())["cost"]["input"]


async def refresh_and_wait(session: aiohttp.ClientSession, base: str, force: bool = False) -> dict[str, Any]:
    async with session.post(f"{base}/api/v1/refresh", headers=ADMIN, json={"force": force}) as r:
        assert r.status == 202, await r.text()
        run = await r.json()
    for _ in range(1200):
        async with session.get(f"{base}/api/v1/refresh/{run['id']}") as r:
            run = await r.json()
        if run["status"] not in ("queued", "running"):
            return run
        await asyncio.sleep(0.005)
    raise AssertionError(f"run {run['id']} did not finish")


async def test_two_web_processes_never_serve_old_prices_after_success(settings: Settings, tmp_path: Path) -> None:
    old_body, new_body = document(CATALOG_OLD), document(CATALOG_NEW)
    old, new = flat_models(json.loads(old_body)), flat_models(json.loads(new_body))

    def input_price(doc: dict[Any, Any], k: Any) -> Any:
        return doc[k].get("cost", {}).get("input")

    both = old.keys() & new.keys()
    changed = sorted(f"{k[0]}/{k[1]}" for k in both if input_price(old, k) not in (None, input_price(new, k)))[:5]
    assert changed, "the two catalogs should differ in some input prices"

    async with fake_upstream(old_body) as up:
        async with pipeline(settings, modelsdev_url=up.url) as ctx:
            assert (await refresh_inline(ctx))["status"] == "succeeded"
        ports = [free_port(), free_port()]
        env = env_for(settings, MODELSDEV_URL=up.url)
        webs = [start(procfile_argv("web"), {**env, "PORT": str(p)}, tmp_path / f"web{p}.log") for p in ports]
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        try:
            with worker(env, tmp_path / "worker.log", threads=4):
                async with aiohttp.ClientSession() as session:
                    for base in bases:
                        await wait_ready(base)
                    key = lambda m: tuple(m.split("/", 1))  # noqa: E731
                    for base in bases:  # warm both caches with the old prices
                        for m in changed:
                            assert await price(session, base, m) == old[key(m)]["cost"]["input"]

                    up.body = new_body
                    run = await refresh_and_wait(session, bases[0])
                    assert run["status"] == "succeeded", run
                    for base in bases:
                        for m in changed:
                            assert await price(session, base, m) == new[key(m)]["cost"]["input"], (base, m)

                    # What a Redis restart does to us: every connection dropped, every key of ours gone.
                    client = redis.Redis.from_url(REDIS_URL)
                    keys = list(client.scan_iter(f"{settings.redis_prefix}:*"))
                    if keys:
                        client.delete(*keys)
                    ours = [
                        c for c in client.client_list() if c.get("name", "").startswith(f"{settings.redis_prefix}:")
                    ]
                    assert sum(c.get("sub", "0") != "0" for c in ours) >= 2  # both web processes listen
                    for c in ours:
                        client.client_kill_filter(_id=c["id"])
                    client.close()
                    await asyncio.sleep(1.0)

                    up.body = old_body
                    run = await refresh_and_wait(session, bases[1], force=True)
                    assert run["status"] == "succeeded", run
                    for base in bases:
                        for m in changed:
                            assert await price(session, base, m) == old[key(m)]["cost"]["input"], (base, m)
        finally:
            for w in webs:
                assert stop(w) == 0, tmp_path / "web.log"
