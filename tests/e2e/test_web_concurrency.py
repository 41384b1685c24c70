"""`modelmeta web` with WEB_CONCURRENCY=2: two processes on one port, both serving, both coherent
after a refresh, both stopped by one SIGTERM; and web processes sharing one per-client budget."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp

from shared.config import Settings
from shared.embedded import document
from tests.e2e.test_coherence import refresh_and_wait
from tests.support import (
    CATALOG_NEW,
    CATALOG_OLD,
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
    wait_until,
    web_process,
    worker,
)

_PROCESS = re.compile(r'modelmeta_web_process_info\{instance="[^"]+",pid="(\d+)"\} 1\.0')
_MODEL_HITS = re.compile(
    r'modelmeta_http_requests_total\{method="GET",route="/api/v1/models/\{provider_id\}/\{model_id\}",status="200"\} '
    r"(\d+(?:\.\d+)?)"
)


async def fresh(base: str, path: str) -> tuple[int, str]:
    """One request on a connection of its own, so that the kernel picks a process for it."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s,
        s.get(base + path) as r,
    ):
        return r.status, await r.text()


async def model_hits_by_pid(base: str) -> dict[int, float]:
    """Each web process's count of model answers, scraped until both processes have answered."""
    seen: dict[int, float] = {}
    for _ in range(200):
        _, text = await fresh(base, "/metrics")
        pid = int(_PROCESS.search(text)[1])  # type: ignore[index]
        hits = _MODEL_HITS.search(text)
        seen[pid] = float(hits[1]) if hits else 0.0
        if len(seen) == 2:
            return seen
    raise AssertionError(f"only these processes answered 200 scrapes: {sorted(seen)}")


async def test_two_processes_share_the_port_and_both_follow_a_refresh(settings: Settings, tmp_path: Path) -> None:
    old_body, new_body = document(CATALOG_OLD), document(CATALOG_NEW)
    old, new = flat_models(json.loads(old_body)), flat_models(json.loads(new_body))
    both = sorted(
        k for k in old.keys() & new.keys() if old[k].get("cost", {}).get("input") != new[k].get("cost", {}).get("input")
    )
    pid_, mid_ = next(k for k in both if old[k].get("cost", {}).get("input") is not None)
    path = f"/api/v1/models/{pid_}/{mid_}"

    async def prices() -> set[Any]:
        out = set()
        for _ in range(24):
            status, text = await fresh(base, path)
            assert status == 200, text
            out.add(json.loads(text)["cost"]["input"])
        return out

    async with fake_upstream(old_body) as up:
        async with pipeline(settings, modelsdev_url=up.url) as ctx:
            assert (await refresh_inline(ctx))["status"] == "succeeded"
        port = free_port()
        env = env_for(settings, MODELSDEV_URL=up.url, WEB_CONCURRENCY="2", PORT=str(port))
        base = f"http://127.0.0.1:{port}"
        web = start(procfile_argv("web"), env, tmp_path / "web.log")
        try:
            await wait_ready(base)
            with worker(env, tmp_path / "worker.log", threads=4):
                started = await model_hits_by_pid(base)  # both processes listen (the second may start later)
                assert web.pid not in started, "the parent only supervises"
                assert await prices() == {old[(pid_, mid_)]["cost"]["input"]}
                before = await model_hits_by_pid(base)
                assert before.keys() == started.keys()
                assert all(before[p] > started[p] for p in before), f"both processes answered: {started} -> {before}"
                up.body = new_body
                async with aiohttp.ClientSession() as session:
                    run = await refresh_and_wait(session, base)
                assert run["status"] == "succeeded", run
                assert await prices() == {new[(pid_, mid_)]["cost"]["input"]}
                after = await model_hits_by_pid(base)
                assert after.keys() == before.keys()
                assert all(after[p] > before[p] for p in after), f"both processes answered after the refresh: {after}"
        finally:
            assert stop(web) == 0, (tmp_path / "web.log").read_text()[-3000:]
        for pid in before:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"web process {pid} outlived the SIGTERM of its parent")


async def test_two_web_processes_share_one_budget_per_client(settings: Settings, tmp_path: Path) -> None:
    async with pipeline(settings) as ctx:
        assert (await refresh_inline(ctx))["status"] == "succeeded"
    env = env_for(settings, API_RATE_LIMIT="60/minute")
    async with (
        web_process(env, tmp_path / "a.log") as a,
        web_process(env, tmp_path / "b.log") as b,
        aiohttp.ClientSession() as session,
    ):
        for i in range(60):
            async with session.get(f"{(a, b)[i % 2]}/api/v1/providers") as r:
                assert r.status == 200, await r.text()
        for base in (a, b):
            async with session.get(f"{base}/api/v1/providers") as r:
                assert r.status == 429, await r.text()
                assert 1 <= int(r.headers["Retry-After"]) <= 61
            async with session.get(f"{base}/healthz") as r:
                assert r.status == 200
        for head in (b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 8200 + b"\r\n"):
            assert await status_line(a, head + b"Host: x\r\n\r\n") == b"HTTP/1.0 400 Bad Request", head[:20]
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(130))
        assert (
            await status_line(a, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
            == b"HTTP/1.0 400 Bad Request"
        )
        assert await status_line(a, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == b"HTTP/1.1 200 OK"


async def status_line(base: str, raw: bytes) -> bytes:
    """The status line a web process answers a raw request with."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 10)).rstrip()
    finally:
        writer.close()


async def test_processes_whose_parent_is_killed_outright_let_the_port_go(settings: Settings, tmp_path: Path) -> None:
    async with pipeline(settings) as ctx:
        assert (await refresh_inline(ctx))["status"] == "succeeded"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start(procfile_argv("web"), env_for(settings, WEB_CONCURRENCY="2", PORT=str(port)), tmp_path / "web.log")
    try:
        await wait_ready(base)
        await model_hits_by_pid(base)  # both children serve
        web.send_signal(signal.SIGKILL)  # the parent alone: no chance to stop its children
        web.wait(5)

        async def port_closed() -> bool:
            try:
                await fresh(base, "/healthz")
            except aiohttp.ClientConnectionError:
                return True
            return False

        await wait_until(port_closed, 15, 0.2, "the orphaned web processes to stop")
    finally:
        stop(web, signal.SIGKILL)
