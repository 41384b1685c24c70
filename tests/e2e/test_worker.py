"""The release step and real worker processes, driven through the CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import urllib.request
from pathlib import Path

from shared.config import Settings
from shared.embedded import document
from tests.support import (
    CATALOG_NEW,
    ROOT,
    cli,
    closed_run,
    drop_database,
    duplicate_changes,
    env_for,
    fake_upstream,
    flat_models,
    free_port,
    listed,
    procfile_argv,
    run_row,
    start,
    stop,
    wait_until,
    worker,
)


def test_release_then_worker_from_the_procfile_complete_a_refresh(settings: Settings, tmp_path: Path) -> None:
    metrics_port = free_port()
    env = env_for(settings, WORKER_METRICS_PORT=str(metrics_port))
    # A fresh database: the release step creates it and applies every migration.
    env["DATABASE_URL"] = settings.database_url + "_fresh"
    release = subprocess.run(procfile_argv("release"), env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert release.returncode == 0, release.stderr
    from migrations import migration_files

    assert f"applied {len(migration_files())} migration(s)" in release.stdout
    again = subprocess.run(procfile_argv("release"), env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert "applied 0 migration(s)" in again.stdout
    proc = start(procfile_argv("worker"), env, tmp_path / "worker.log")
    try:
        done = cli(["refresh", "--wait", "--json"], env)
        assert done.returncode == 0, done.stdout + done.stderr + (tmp_path / "worker.log").read_text()
        run = json.loads(done.stdout.strip().splitlines()[-1])
        assert run["status"] == "succeeded"
        assert run["counts"]["added"] == 28
        runs = cli(["runs", "--json"], env)
        assert json.loads(runs.stdout)[0]["id"] == run["id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'modelmeta_provider_syncs_total{status="succeeded"} 5.0' in metrics
        assert "modelmeta_refresh_duration_seconds_count" in metrics
        assert 'modelmeta_worker_messages_total{actor="sync_provider",outcome="ok"} 5.0' in metrics
    finally:
        stop(proc)
        asyncio.run(drop_database(env["DATABASE_URL"]))


async def test_worker_killed_mid_refresh_recovers_exactly(settings: Settings, tmp_path: Path) -> None:
    body = document(CATALOG_NEW)
    dsn = settings.database_url
    async with fake_upstream(body) as up:
        env = env_for(settings, MODELSDEV_URL=up.url)
        log = tmp_path / "worker.log"
        with worker(env, log, threads=2) as first:
            started = await asyncio.to_thread(cli, ["refresh"], env)
            run_id = int(started.stdout.split()[0])

            async def midway() -> bool:
                row = await run_row(dsn, run_id)
                return row is not None and 0 < row["finished"] < row["providers_total"]

            await wait_until(midway, 30, 0.02, "the run midway")
            stop(first, signal.SIGKILL)
            row = await run_row(dsn, run_id)
            assert row is not None and row["status"] == "running"
            assert row["finished"] < row["providers_total"]

        with worker(env, log, threads=4):
            row = await wait_until(lambda: closed_run(dsn, run_id), 90, 0.2, "the run closed")
        assert row["status"] == "succeeded", log.read_text()[-3000:]
        assert await listed(dsn) == flat_models(json.loads(body))
        assert await duplicate_changes(dsn) == 0
