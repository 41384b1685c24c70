"""Faults during a refresh: a worker killed mid-transaction, Redis restarted, PostgreSQL restarted.

After each, the catalog is the new document exactly (never a mix within a provider), the run
closes, and the web process never answered a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from shared.config import Settings
from shared.embedded import document
from tests.support import (
    ADMIN_DSN,
    CATALOG_NEW,
    REDIS_URL,
    SAMPLE,
    cli,
    closed_run,
    duplicate_changes,
    env_for,
    fake_upstream,
    flat_models,
    listed,
    procfile_argv,
    run_row,
    start,
    stop,
    wait_until,
    web_process,
    worker,
)


@asynccontextmanager
async def service(settings: Settings, tmp_path: Path, body: bytes, threads: int = 1) -> AsyncIterator[dict[str, Any]]:
    """web, worker and scheduler against a fake upstream; the scheduler's start-up refresh is the
    run under test (the catalog is empty, so it refreshes at once). Afterwards neither the web
    process nor the scheduler logged an unexpected error."""
    async with fake_upstream(body) as up:
        env = env_for(settings, MODELSDEV_URL=up.url, REFRESH_INTERVAL="3600", STALE_RUN_AFTER="2")
        sched = start(procfile_argv("scheduler"), env, tmp_path / "scheduler.log")
        try:
            with worker(env, tmp_path / "worker.log", threads=threads) as w:
                # /healthz, not /readyz: the catalog is still loading, which is the point.
                async with web_process(env, tmp_path / "web.log", ready="/healthz") as base:
                    yield {"env": env, "base": base, "worker": w, "upstream": up}
        finally:
            stop(sched)
    for name in ("web.log", "scheduler.log"):
        log = (tmp_path / name).read_text()
        assert "scheduler_started" in log or "web_resources_open" in log, log[-3000:]  # it is the log we think
        assert not unexpected_errors(log), (name, unexpected_errors(log))


def unexpected_errors(log: str) -> list[str]:
    """The lines of a JSON log that say something went wrong unexpectedly: an unhandled error, an
    error logged with a traceback, or a traceback outside any event (a crash). asyncpg's own
    warning while it reconnects its pool during an outage carries a traceback and is expected."""
    bad = []
    for line in log.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                bad.append(line)
            continue
        unhandled = event.get("event") == "unhandled_error"
        if unhandled or (event.get("level") in ("error", "critical") and "exception" in event):
            bad.append(line[:2000])
    return bad


class Prober:
    """Keeps asking the web process for a cached and an uncached route while it is entered; records
    every answer as (time, path, status), status 0 for no answer, and every answer that showed a
    traceback in `problems`. The test asserts on them once the prober has stopped."""

    PATHS = ("/api/v1/providers", "/api/v1/models?limit=3&min_context={n}", "/readyz")

    def __init__(self, base: str) -> None:
        self.base = base
        self.statuses: list[tuple[float, str, int]] = []
        self.problems: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            n = 0
            while True:
                n += 1
                for path in self.PATHS:
                    path = path.format(n=n)
                    try:
                        async with s.get(self.base + path) as r:
                            body = await r.text()
                            self.statuses.append((time.monotonic(), path, r.status))
                            if "Traceback" in body:
                                self.problems.append(f"{path} answered {r.status} with a traceback: {body[:500]}")
                    except (aiohttp.ClientError, TimeoutError):
                        self.statuses.append((time.monotonic(), path, 0))
                await asyncio.sleep(0.05)

    def answered_after(self, moment: float) -> set[int]:
        return {status for t, _, status in self.statuses if t > moment}

    async def __aenter__(self) -> Prober:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        # A prober that died of anything but the cancel says so here, instead of going quiet.
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        assert not self.problems, self.problems


async def halfway(dsn: str) -> bool:
    row = await run_row(dsn)
    return bool(row and 5 < row["finished"] < row["providers_total"] - 20)


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

            await wait_until(waiting, 30, what="the sync of acme waiting on the lock")
            stop(first, signal.SIGKILL)
        await holder.execute("SELECT pg_advisory_unlock_all()")
        await holder.close()
        with worker(env, tmp_path / "w2.log", threads=2):
            row = await wait_until(lambda: closed_run(settings.database_url), 60, 0.2, "the run closed")
    assert row["status"] == "succeeded", row
    assert await listed(settings.database_url) == flat_models(json.loads(body))
    assert await duplicate_changes(settings.database_url) == 0


# The restarts act on the servers the tests use (TEST_REDIS_URL, TEST_DATABASE_URL), so that they
# can be pointed at private ones rather than the machine's shared PostgreSQL and Redis.
REDIS_PORT = str(urlsplit(REDIS_URL).port or 6379)


def _redis_answers() -> bool:
    ping = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", REDIS_PORT, "ping"], capture_output=True, check=False)
    return b"PONG" in ping.stdout


def _start_redis() -> None:
    if not _redis_answers():
        options = ["--bind", "127.0.0.1", "--port", REDIS_PORT, "--save", "", "--appendonly", "no", "--dir", "/tmp"]
        subprocess.run(["redis-server", "--daemonize", "yes", *options], check=True)
    for _ in range(100):
        if _redis_answers():
            return
        time.sleep(0.05)
    raise AssertionError(f"Redis did not come back on port {REDIS_PORT}")


def _restart_redis() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", REDIS_PORT, "shutdown", "nosave"], capture_output=True)
    for _ in range(100):
        if not _redis_answers():
            break
        time.sleep(0.05)
    _start_redis()


def _pg_cluster() -> list[str] | None:
    """[version, name] of the local PostgreSQL cluster that serves TEST_DATABASE_URL, if there is one."""
    if shutil.which("pg_lsclusters") is None:
        return None
    port = str(urlsplit(ADMIN_DSN).port or 5432)
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False).stdout
    return next((line.split()[:2] for line in out.splitlines() if line.split()[2:3] == [port]), None)


def _pg_ctl(action: str) -> None:
    cluster = _pg_cluster()
    assert cluster is not None
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action], check=action == "restart")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a local redis-server to restart")
async def test_redis_restarted_during_a_refresh(settings: Settings, tmp_path: Path) -> None:
    body = document(CATALOG_NEW)
    try:
        async with service(settings, tmp_path, body) as svc:
            async with Prober(svc["base"]) as probe:
                await wait_until(lambda: halfway(settings.database_url), 60, what="the run halfway")
                restarted = time.monotonic()
                await asyncio.to_thread(_restart_redis)
                row = await wait_until(lambda: closed_run(settings.database_url), 90, 0.2, "the run closed")
                await asyncio.sleep(0.5)
            assert row["status"] == "succeeded", row
            assert await listed(settings.database_url) == flat_models(json.loads(body))
            assert await duplicate_changes(settings.database_url) == 0
            assert {status for _, _, status in probe.statuses} <= {200, 503}, set(probe.statuses)
            assert 200 in probe.answered_after(restarted)  # it kept answering through the restart
            async with aiohttp.ClientSession() as s, s.get(svc["base"] + "/api/v1/models?limit=1") as r:
                assert (await r.json())["total"] == len(flat_models(json.loads(body)))
    finally:
        _start_redis()


@pytest.mark.skipif(_pg_cluster() is None, reason="needs the local PostgreSQL cluster of TEST_DATABASE_URL to restart")
async def test_postgres_restarted_during_a_refresh(settings: Settings, tmp_path: Path) -> None:
    body = document(CATALOG_NEW)
    try:
        async with service(settings, tmp_path, body) as svc:
            async with Prober(svc["base"]) as probe:
                await asyncio.sleep(1.0)  # some answers cached before the outage
                await wait_until(lambda: halfway(settings.database_url), 60, what="the run halfway")
                restarted = time.monotonic()
                await asyncio.to_thread(_pg_ctl, "restart")
                row = await wait_until(lambda: closed_run(settings.database_url), 120, 0.3, "the run closed")
            assert row["status"] == "succeeded", row
            assert await listed(settings.database_url) == flat_models(json.loads(body))
            assert await duplicate_changes(settings.database_url) == 0
            statuses = {s for _, _, s in probe.statuses}
            assert statuses <= {200, 503}, statuses
            assert 503 in {s for _, p, s in probe.statuses if p == "/readyz"}  # it said it was not ready
            assert 200 in {s for _, p, s in probe.statuses if p == "/api/v1/providers"}
            assert 200 in probe.answered_after(restarted)
    finally:
        await asyncio.to_thread(_pg_ctl, "start")
