"""Helpers for benchmarks: throwaway databases, worker processes, a results table."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "data" / "modelsdev"
ADMIN_DSN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def dsn_for(db: str) -> str:
    return urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{db}"))


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A new migrated database, dropped afterwards."""
    from migrations import migrate

    name = f"mm_bench_{uuid.uuid4().hex[:8]}"
    await migrate(dsn_for(name))
    try:
        yield dsn_for(name)
    finally:
        conn = await asyncpg.connect(ADMIN_DSN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@contextmanager
def worker_processes(env: dict[str, str], processes: int, threads: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`processes` separate `modelmeta worker` processes, as a process manager would run them."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker", "--threads", str(threads)],
            env={**env, "WORKER_METRICS_PORT": "0"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(processes)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


async def wait_ready(dsn: str, seconds: float = 30) -> None:
    """Give worker processes time to boot (they have no readiness endpoint)."""
    await asyncio.sleep(min(seconds, 3.0))


def table(rows: list[tuple[str, str, str, str]]) -> str:
    headers = ("measure", "modelmeta", "baseline", "ratio")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def now() -> float:
    return time.perf_counter()
