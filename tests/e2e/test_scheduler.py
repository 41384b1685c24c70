"""Two schedulers against one Redis: one leads; when it dies the other takes over; one refresh per slot."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from pathlib import Path

import redis

from shared.config import Settings
from tests.support import REDIS_URL, connection, env_for, procfile_argv, start, stop, wait_until, worker

INTERVAL = 3.0


async def scheduler_runs(dsn: str) -> list[tuple[int, float, str]]:
    async with connection(dsn) as conn:
        rows = await conn.fetch(
            "SELECT id, extract(epoch FROM requested_at)::float8 AS at, status FROM refresh_runs "
            "WHERE trigger = 'scheduler' ORDER BY id"
        )
    return [(r["id"], r["at"], r["status"]) for r in rows]


def identity(log: Path) -> str | None:
    """The identity a scheduler logged when it started, or None while it has not."""
    for line in log.read_text().splitlines():
        if '"scheduler_started"' in line:
            return str(json.loads(line)["identity"])
    return None


def leader(settings: Settings) -> str | None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        token = client.get(f"{settings.redis_prefix}:scheduler:leader")
    finally:
        client.close()
    return token.decode() if token else None


async def test_one_leader_failover_and_one_refresh_per_slot(settings: Settings, tmp_path: Path) -> None:
    env = env_for(settings, REFRESH_INTERVAL=str(INTERVAL))
    logs = [tmp_path / "scheduler-a.log", tmp_path / "scheduler-b.log"]
    with worker(env, tmp_path / "worker.log", threads=2):
        a = start(procfile_argv("scheduler"), env, logs[0])
        b = None
        procs = {}
        try:
            # Started one after the other (a process can take seconds to start on a busy machine).
            id_a = await wait_until(lambda: identity(logs[0]), 20, 0.1, "scheduler a started")
            b = start(procfile_argv("scheduler"), env, logs[1])
            id_b = await wait_until(lambda: identity(logs[1]), 20, 0.1, "scheduler b started")
            procs = {id_a: a, id_b: b}
            first = leader(settings)
            assert first in procs, (first, procs)
            await asyncio.sleep(3 * INTERVAL)
            before = await scheduler_runs(settings.database_url)
            assert len(before) >= 2, before
            # Only the leader enqueued.
            other_log = logs[1] if procs[first] is a else logs[0]
            assert '"refresh_enqueued"' not in other_log.read_text()

            killed_at = time.time()
            stop(procs[first], signal.SIGKILL)
            await wait_until(lambda: leader(settings) not in (None, first), 10, 0.1, "a new leader")
            took_over = time.time() - killed_at
            assert took_over < 7, took_over  # the lease is 5 s
            await asyncio.sleep(3 * INTERVAL)
        finally:
            for p in (a, b):
                if p is not None:
                    stop(p)

        async def all_closed() -> list[tuple[int, float, str]] | None:
            runs = await scheduler_runs(settings.database_url)
            return runs if all(status not in ("queued", "running") for _, _, status in runs) else None

        after = await wait_until(all_closed, 10, 0.1, "the worker closing the last run")
    new = [r for r in after if r[1] > killed_at]
    assert len(new) >= 2, after
    assert '"refresh_enqueued"' in other_log.read_text()
    per_slot = Counter(int(at // INTERVAL) for _, at, _ in after)
    assert max(per_slot.values()) == 1, per_slot
    assert all(status in ("succeeded", "unchanged") for _, _, status in after), after
