"""The whole service under honcho, from the Procfile, as `make run` starts it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from shared.config import Settings
from tests.conftest import ADMIN_DSN, SAMPLE, env_for
from tests.e2e.processes import ROOT
from tests.support import fake_upstream, wait_ready

pytestmark = pytest.mark.slow
HONCHO = str(Path(sys.executable).parent / "honcho")
ADMIN = {"Authorization": "Bearer test-admin-token"}


def _free_base_port() -> int:
    for _ in range(50):
        base = 20000 + (os.getpid() * 7 + int(time.time() * 1000)) % 30000
        ok = True
        for port in (base, base + 100, base + 200):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    raise RuntimeError("no free ports")


def honcho(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [HONCHO, "-f", str(ROOT / "Procfile"), *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _run(dsn: str, run_id: int) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT id, status, trigger FROM refresh_runs WHERE id = $1", run_id)
    finally:
        await conn.close()
    assert row is not None
    return row


async def test_honcho_runs_the_service_and_sigterm_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    body = SAMPLE.read_bytes()
    dsn = settings.database_url + "_honcho"
    base_port = _free_base_port()
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
            assert (await _run(dsn, 1))["status"] == "succeeded"

            # A refresh whose plan_refresh is in flight (the upstream holds its answer) at SIGTERM.
            up.script = [slow]
            async with (
                aiohttp.ClientSession() as s,
                s.post(f"{base}/api/v1/refresh", headers=ADMIN, json={"force": True}) as r,
            ):
                run_id = (await r.json())["id"]
            for _ in range(100):
                if len(up.requests) >= 2:
                    break
                await asyncio.sleep(0.1)
            assert len(up.requests) >= 2, "plan_refresh never reached the upstream"
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
            for _ in range(300):
                if (await _run(dsn, run_id))["status"] not in ("queued", "running"):
                    break
                await asyncio.sleep(0.1)
            assert (await _run(dsn, run_id))["status"] == "succeeded", log.read_text()[-4000:]
            os.kill(service.pid, signal.SIGTERM)
            await asyncio.to_thread(service.wait, 30)
        finally:
            for p in (locals().get("service"), locals().get("release")):
                if p is not None and p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            conn = await asyncpg.connect(ADMIN_DSN)
            await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
            await conn.close()
    lines = [json.loads(x.split("| ", 1)[1]) for x in log.read_text().splitlines() if "| {" in x]
    assert any(e.get("event") == "web_resources_closed" for e in lines)
    assert any(e.get("event") == "worker_resources_closed" for e in lines)
    assert any(e.get("event") == "scheduler_stopped" for e in lines)
