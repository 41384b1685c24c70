"""Helpers for benchmarks: throwaway databases, worker processes, a results table."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
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


@asynccontextmanager
async def bench_env(**extra: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A scratch database and a Redis prefix of its own: (dsn, the environment for modelmeta
    processes). The settings are exported to this process too, for the in-process broker, and the
    prefix's Redis keys are deleted afterwards."""
    import redis

    async with scratch_database() as dsn:
        prefix = f"mmbench-{uuid.uuid4().hex[:8]}"
        settings = {"DATABASE_URL": dsn, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix, **extra}
        os.environ.update(settings)
        try:
            yield dsn, {**os.environ, "LOG_LEVEL": "warning", "LOG_FORMAT": "json", **settings}
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"{prefix}:*"))
            if keys:
                client.delete(*keys)
            client.close()


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


BENCH_DIR = ROOT / ".bench"


def reference_catalog(name: str = "api-2026-07-02") -> Path:
    """A real models.dev catalog shipped in the package (shared.embedded), written out as a file
    for the benchmarks that load it by URL, with its models document beside it when one is shipped
    (a file source reads `models-DATE.json` beside `api-DATE.json`)."""
    from shared.embedded import DOCUMENTS, document

    path = BENCH_DIR / "data" / f"{name}.json"
    names = [name, *(["models" + name[3:]] if name.startswith("api") and "models" + name[3:] in DOCUMENTS else [])]
    for each in names:
        target = path.with_name(f"{each}.json")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(document(each))
    return path


#: wrk's script for a list of paths: each request the next path of its thread's share, so that
#: no path is asked for twice while there are more paths than requests.
_PATHS_LUA = """
local paths, n, threads = {}, 0, 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  n = tid
end
function request()
  local path = paths[(n % #paths) + 1]
  n = n + tonumber(args_threads or 2)
  return wrk.format("GET", path)
end
"""


def wrk(
    url: str, connections: int, seconds: float, threads: int = 2, paths: list[str] | None = None
) -> dict[str, float] | None:
    """Requests per second and latency percentiles from wrk (a load generator that is not the
    bottleneck); None when wrk is not installed. `paths`: ask for these (on `url`'s host) in turn,
    each once while they last, instead of `url` itself."""
    exe = shutil.which("wrk")
    if exe is None:
        return None
    command = [exe, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    with tempfile.TemporaryDirectory() as tmp:
        if paths is not None:
            (Path(tmp) / "paths.lua").write_text(_PATHS_LUA.replace("args_threads", str(threads)))
            (Path(tmp) / "paths.txt").write_text("\n".join(paths) + "\n")
            command += ["-s", str(Path(tmp) / "paths.lua"), "--", str(Path(tmp) / "paths.txt")]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def pct(p: str) -> float:
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m[1]) * unit[m[2]] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(rps[1]) if rps else 0.0,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_200": float(errors[1]) if errors else 0.0,
        "errors": float(sum(int(x) for x in socket_errors.groups())) if socket_errors else 0.0,
    }


def write_results(name: str, rows: list[tuple[str, str, str, str]], extra: dict[str, object] | None = None) -> None:
    """Keep a benchmark's table for benchmarks/report.py (make bench puts them in the README)."""
    import json

    BENCH_DIR.mkdir(exist_ok=True)
    (BENCH_DIR / f"{name}.json").write_text(json.dumps({"rows": rows, "cores": os.cpu_count(), **(extra or {})}))


def peak_rss_mib(pid: int) -> float:
    """The peak resident memory (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def copy_floor(path: Path) -> tuple[float, int]:
    """The floor: one process reads the file, flattens it and COPY-upserts every model in one
    transaction into an empty database, with no queue; (seconds, models)."""
    from shared.catalog import decode_provider_slice, model_row, parse_document
    from shared.db import catalog_writes
    from shared.db.pool import create_pool

    async with scratch_database() as dsn:
        pool = await create_pool(dsn, min_size=1, max_size=1)
        started = now()
        doc = parse_document(path.read_bytes())
        rows = []
        async with pool.acquire() as conn, conn.transaction():
            for pid, data in doc.slices.items():
                provider, models = decode_provider_slice(pid, data)
                await catalog_writes.upsert_provider(conn, provider, doc.slice_hashes[pid])
                rows.extend(model_row(pid, provider.name, m) for m in models.values())
            n = await catalog_writes.upsert_models(conn, rows)
        elapsed = now() - started
        await pool.close()
        return elapsed, n


async def timed_refresh(pool: Any, send: Any) -> tuple[float, Any]:
    """Enqueue a whole-catalog refresh and wait for the run to close: (seconds, run)."""
    from shared.db import runs
    from shared.refresh import request_refresh

    started = now()
    run, _ = await request_refresh(pool, trigger="cli")
    send(run["id"])
    while True:
        r = await runs.get_run(pool, run["id"])
        if r is not None and r["status"] not in ("queued", "running"):
            return now() - started, r
        await asyncio.sleep(0.01)
