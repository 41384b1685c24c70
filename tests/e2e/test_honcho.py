"""The whole service under honcho, from the Procfile, as `make run` starts it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from shared.config import Settings
from tests.support import (
    ADMIN,
    BIN,
    ROOT,
    SAMPLE,
    closed_run,
    drop_database,
    env_for,
    fake_upstream,
    free_port_block,
    run_row,
    start,
    wait_ready,
    wait_until,
)


def honcho(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {**env, "PATH": f"{BIN}:{env.get('PATH', '')}"}
    return start([str(BIN / "honcho"), "-f", str(ROOT / "Procfile"), *args], env, log)


async def _run(dsn: str, run_id: int) -> asyncpg.Record:
    row = await run_row(dsn, run_id)
    assert row is not None
    return row


async def test_honcho_runs_the_service_and_sigterm_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    body = SAMPLE.read_bytes()
    dsn = settings.database_url + "_honcho"
    base_port = free_port_block()
    log = tmp_path / "honcho.log"
    hold = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await hold.wait()
        return web.Response(body=body, content_type="application/json")

    async with fake_upstream(body) as up:
        env = env_for(
            settings,
            DATABASE_URL=dsn,
            MODELSDEV_URL=up.url,
            REFRESH_INTERVAL="3600",
            WORKER_METRICS_PORT="",
            UPSTREAM_TIMEOUT="60",
        )
        try:
            release = honcho(["start", "release"], env, log)
            assert await asyncio.to_thread(release.wait, 60) == 0, log.read_text()
            service = honcho(["start", "-p", str(base_port), "-c", "release=0"], env, log)
            base = f"http://127.0.0.1:{base_port}"
            # Ready means: PostgreSQL and Redis reachable and a catalog loaded by the scheduler's first run.
            await wait_ready(base, 60)
            assert (await _run(dsn, 1))["trigger"] == "scheduler"
            # The catalog is visible before its run closes (the close waits for the web's acknowledgement).
            first = await wait_until(lambda: closed_run(dsn, 1), 30, 0.1, "the scheduler's first run closed")
            assert first["status"] == "succeeded"

            # A refresh whose plan_refresh is in flight (the upstream holds its answer) at SIGTERM.
            up.script = [slow]
            async with (
                aiohttp.ClientSession() as s,
                s.post(f"{base}/api/v1/refresh", headers=ADMIN, json={"force": True}) as r,
            ):
                run_id = (await r.json())["id"]
            await wait_until(lambda: len(up.requests) >= 2, 10, 0.1, "plan_refresh reaching the upstream")
            stopped_at = time.monotonic()
            os.kill(service.pid, signal.SIGTERM)
            rc = await asyncio.to_thread(service.wait, 30)
            took = time.monotonic() - stopped_at
            hold.set()
            text = log.read_text()
            assert took < 10, (took, text[-3000:])
            assert "SIGKILL" not in text, text[-3000:]
            assert rc in (0, -15, 143), rc
            assert (await _run(dsn, run_id))["status"] in ("queued", "running")

            # After a restart the interrupted message is processed: the run completes.
            service = honcho(["start", "-p", str(base_port), "-c", "release=0"], env, log)
            row = await wait_until(lambda: closed_run(dsn, run_id), 30, 0.1, "the interrupted run closed")
            assert row["status"] == "succeeded", log.read_text()[-4000:]
            os.kill(service.pid, signal.SIGTERM)
            await asyncio.to_thread(service.wait, 30)
        finally:
            for p in (locals().get("service"), locals().get("release")):
                if p is not None and p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)
            await drop_database(dsn)
    lines = [json.loads(x.split("| ", 1)[1]) for x in log.read_text().splitlines() if "| {" in x]
    assert any(e.get("event") == "web_resources_closed" for e in lines)
    assert any(e.get("event") == "worker_resources_closed" for e in lines)
    assert any(e.get("event") == "scheduler_stopped" for e in lines)
