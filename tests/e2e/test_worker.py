"""The release step and real worker processes, driven through the CLI."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import asyncpg
import pytest

from shared.config import Settings
from tests.conftest import CATALOG_NEW, env_for, reference_catalog
from tests.e2e.processes import cli, stop, wait_for, worker
from tests.support import fake_upstream, flat_models, free_port

pytestmark = pytest.mark.slow


def test_release_then_worker_from_the_procfile_complete_a_refresh(settings: Settings, tmp_path: Path) -> None:
    import subprocess

    from tests.e2e.processes import ROOT, procfile_argv, start

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
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'modelmeta_provider_syncs_total{status="succeeded"} 5.0' in metrics
        assert "modelmeta_refresh_duration_seconds_count" in metrics
        assert 'modelmeta_worker_messages_total{actor="sync_provider",outcome="ok"} 5.0' in metrics
    finally:
        stop(proc)
        asyncio.run(_drop_database(env["DATABASE_URL"]))


async def _drop_database(dsn: str) -> None:
    from tests.conftest import ADMIN_DSN

    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


async def _listed(dsn: str) -> dict[tuple[str, str], object]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT provider_id, model_id, raw::text FROM models WHERE removed_at IS NULL")
    finally:
        await conn.close()
    return {(r[0], r[1]): json.loads(r[2]) for r in rows}


async def _run_status(dsn: str, run_id: int) -> tuple[str, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        r = await conn.fetchrow(
            "SELECT status, providers_total, (SELECT count(*) FROM refresh_provider_runs p "
            "WHERE p.run_id = r.id AND p.status <> 'pending') FROM refresh_runs r WHERE id = $1",
            run_id,
        )
    finally:
        await conn.close()
    assert r is not None
    return r[0], r[1], r[2]


async def test_worker_killed_mid_refresh_recovers_exactly(settings: Settings, tmp_path: Path) -> None:
    body = reference_catalog(CATALOG_NEW)
    async with fake_upstream(body) as up:
        env = env_for(settings, MODELSDEV_URL=up.url)
        log = tmp_path / "worker.log"
        with worker(env, log, threads=2) as first:
            started = await asyncio.to_thread(cli, ["refresh"], env)
            run_id = int(started.stdout.split()[0])

            async def midway() -> bool:
                _, total, finished = await _run_status(settings.database_url, run_id)
                return 0 < finished < total

            for _ in range(600):
                if await midway():
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the run never got midway: " + log.read_text()[-2000:])
            stop(first, signal.SIGKILL)
            status, total, finished = await _run_status(settings.database_url, run_id)
            assert status == "running"
            assert finished < total

        with worker(env, log, threads=4):

            def closed() -> bool:
                return asyncio.run(_run_status(settings.database_url, run_id))[0] != "running"

            await asyncio.to_thread(wait_for, closed, 90.0, 0.2)
        status, total, finished = await _run_status(settings.database_url, run_id)
        assert status == "succeeded", log.read_text()[-3000:]
        assert await _listed(settings.database_url) == flat_models(json.loads(body))
        conn = await asyncpg.connect(settings.database_url)
        try:
            dupes = await conn.fetchval(
                "SELECT count(*) FROM (SELECT provider_id, model_id, kind FROM model_changes "
                "GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
            )
        finally:
            await conn.close()
        assert dupes == 0
