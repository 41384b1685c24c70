"""Faults during a refresh: a worker killed mid-transaction, Redis restarted, PostgreSQL restarted.

After each, the catalog is the new document exactly (never a mix within a provider), the run
closes, and the web process never answered a 500.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from shared.config import Settings
from tests.conftest import CATALOG_NEW, REDIS_URL, SAMPLE, env_for, reference_catalog
from tests.e2e.processes import ROOT, cli, procfile_argv, start, stop, worker
from tests.support import fake_upstream, flat_models, free_port

pytestmark = pytest.mark.slow


async def run_row(dsn: str) -> asyncpg.Record | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return None  # PostgreSQL restarting
    try:
        return await conn.fetchrow(
            "SELECT id, status, error, (SELECT count(*) FROM refresh_provider_runs p "
            "WHERE p.run_id = r.id AND p.status <> 'pending') AS finished, providers_total "
            "FROM refresh_runs r ORDER BY id DESC LIMIT 1"
        )
    finally:
        await conn.close()


async def wait_until(check: Callable[[], Any], seconds: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {seconds}s")


async def listed(dsn: str) -> dict[tuple[str, str], Any]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT provider_id, model_id, raw::text FROM models WHERE removed_at IS NULL")
        dupes = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM model_changes GROUP BY run_id, provider_id, model_id, kind "
            "HAVING count(*) > 1) d"
        )
    finally:
        await conn.close()
    assert dupes == 0
    return {(r[0], r[1]): json.loads(r[2]) for r in rows}


@asynccontextmanager
async def service(settings: Settings, tmp_path: Path, body: bytes, threads: int = 1) -> AsyncIterator[dict[str, Any]]:
    """web, worker and scheduler against a fake upstream; the scheduler's start-up refresh is the
    run under test (the catalog is empty, so it refreshes at once)."""
    async with fake_upstream(body) as up:
        port = free_port()
        env = env_for(
            settings,
            MODELSDEV_URL=up.url,
            REFRESH_INTERVAL="3600",
            STALE_RUN_AFTER="2",
            PORT=str(port),
            WORKER_HEARTBEAT_TIMEOUT_MS="3000",
        )
        web = start(procfile_argv("web"), env, tmp_path / "web.log")
        sched = start(procfile_argv("scheduler"), env, tmp_path / "scheduler.log")
        base = f"http://127.0.0.1:{port}"
        try:
            with worker(env, tmp_path / "worker.log", threads=threads) as w:

                async def up_() -> bool:
                    try:
                        async with aiohttp.ClientSession() as s, s.get(base + "/healthz") as r:
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False

                await wait_until(up_, 30, 0.1)
                yield {"env": env, "base": base, "worker": w, "upstream": up}
        finally:
            stop(sched)
            stop(web)
    for name in ("web.log", "scheduler.log"):
        log = (tmp_path / name).read_text()
        assert "Traceback" not in log or name != "web.log" or "unhandled_error" not in log, log[-3000:]


class Prober:
    """Keeps asking the web process for a cached and an uncached route; records every status."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.statuses: list[tuple[str, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            n = 0
            while True:
                n += 1
                for path in ("/api/v1/providers", f"/api/v1/models?limit=3&min_context={n}", "/readyz"):
                    try:
                        async with s.get(self.base + path) as r:
                            body = await r.text()
                            self.statuses.append((path, r.status))
                            assert "Traceback" not in body
                    except aiohttp.ClientError:
                        self.statuses.append((path, 0))
                await asyncio.sleep(0.05)

    def __enter__(self) -> Prober:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_worker_killed_inside_a_provider_transaction(settings: Settings, tmp_path: Path) -> None:
    body = SAMPLE.read_bytes()
    holder = await asyncpg.connect(settings.database_url)
    # The sync of `acme` will wait on this lock inside its transaction, having locked its row.
    await holder.execute("SELECT pg_advisory_lock(hashtext('sync:acme'))")
    async with fake_upstream(body) as up:
        env = env_for(settings, MODELSDEV_URL=up.url, WORKER_HEARTBEAT_TIMEOUT_MS="3000")
        with worker(env, tmp_path / "w1.log", threads=1) as first:
            assert (await asyncio.to_thread(cli, ["refresh"], env)).returncode == 0

            async def waiting() -> bool:
                n = await holder.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                return bool(n)

            await wait_until(waiting, 30)
            stop(first, signal.SIGKILL)
        await holder.execute("SELECT pg_advisory_unlock_all()")
        await holder.close()
        with worker(env, tmp_path / "w2.log", threads=2):

            async def closed() -> asyncpg.Record | None:
                row = await run_row(settings.database_url)
                return row if row and row["status"] not in ("queued", "running") else None

            row = await wait_until(closed, 60, 0.2)
    assert row["status"] == "succeeded", row
    assert await listed(settings.database_url) == flat_models(json.loads(body))


def _restart_redis() -> None:
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], capture_output=True, check=False
    )
    for _ in range(100):
        if (
            subprocess.run(
                ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True, check=False
            ).returncode
            != 0
        ):
            break
        time.sleep(0.05)
    subprocess.run(["bash", str(ROOT / ".ci" / "services.sh")], check=True)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a local redis-server to restart")
async def test_redis_restarted_during_a_refresh(settings: Settings, tmp_path: Path) -> None:
    assert REDIS_URL.startswith("redis://127.0.0.1:6379")
    body = reference_catalog(CATALOG_NEW)
    try:
        async with service(settings, tmp_path, body) as svc:
            with Prober(svc["base"]) as probe:

                async def midway() -> bool:
                    row = await run_row(settings.database_url)
                    return bool(row and 5 < row["finished"] < row["providers_total"] - 20)

                await wait_until(midway, 60)
                await asyncio.to_thread(_restart_redis)

                async def closed() -> asyncpg.Record | None:
                    row = await run_row(settings.database_url)
                    return row if row and row["status"] not in ("queued", "running") else None

                row = await wait_until(closed, 90, 0.2)
                await asyncio.sleep(0.5)
            assert row["status"] == "succeeded", row
            assert await listed(settings.database_url) == flat_models(json.loads(body))
            assert all(status in (200, 503) for _, status in probe.statuses), set(probe.statuses)
            async with aiohttp.ClientSession() as s, s.get(svc["base"] + "/api/v1/models?limit=1") as r:
                assert (await r.json())["total"] == len(flat_models(json.loads(body)))
    finally:
        subprocess.run(["bash", str(ROOT / ".ci" / "services.sh")], check=False)


def _pg_version() -> str | None:
    root = Path("/etc/postgresql")
    versions = sorted(p.name for p in root.iterdir()) if root.exists() else []
    return versions[-1] if versions and shutil.which("pg_ctlcluster") else None


@pytest.mark.skipif(_pg_version() is None, reason="needs a local PostgreSQL cluster to restart")
async def test_postgres_restarted_during_a_refresh(settings: Settings, tmp_path: Path) -> None:
    body = reference_catalog(CATALOG_NEW)
    version = _pg_version()
    try:
        async with service(settings, tmp_path, body) as svc:
            with Prober(svc["base"]) as probe:
                await asyncio.sleep(1.0)  # some answers cached before the outage

                async def midway() -> bool:
                    row = await run_row(settings.database_url)
                    return bool(row and 5 < row["finished"] < row["providers_total"] - 20)

                await wait_until(midway, 60)
                await asyncio.to_thread(
                    subprocess.run,
                    ["pg_ctlcluster", "--skip-systemctl-redirect", str(version), "main", "restart"],
                    check=True,
                )

                async def closed() -> asyncpg.Record | None:
                    row = await run_row(settings.database_url)
                    return row if row and row["status"] not in ("queued", "running") else None

                row = await wait_until(closed, 120, 0.3)
            assert row["status"] == "succeeded", row
            assert await listed(settings.database_url) == flat_models(json.loads(body))
            statuses = {s for _, s in probe.statuses}
            assert statuses <= {200, 503}, statuses
            assert 503 in {s for p, s in probe.statuses if p == "/readyz"}  # it said it was not ready
            assert 200 in {s for p, s in probe.statuses if p == "/api/v1/providers"}
    finally:
        subprocess.run(["bash", str(ROOT / ".ci" / "services.sh")], check=False)
