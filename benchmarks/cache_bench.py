"""The response cache under hostile traffic (issue 15), and the cached read path (issue 14).

4,000 distinct list queries (`GET /api/v1/models?limit=500&min_context=N`, N = 0..3999, 8 at a time)
against one web process serving the real 5,276-model catalog: its peak resident memory beside its
resident memory before the run (goal: peak < baseline + CACHE_MAX_BYTES + 64 MiB), with the cache's
own byte count and evictions. Then, when `wrk` is installed, cached throughput of one list route
(`wrk -t2 -c32`) beside a bare aiohttp handler serving the same bytes.

    python benchmarks/cache_bench.py [--max-bytes 134217728] [--queries 4000] [--wrk-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from benchmarks.api_bench import free_port, load_catalog, wait_up
from benchmarks.common import ROOT, bench_env, peak_rss_mib, table, write_results
from benchmarks.load_bench import rss_mib
from shared.embedded import document

MIB = 1024 * 1024
HOT = "/api/v1/models?provider=openai&limit=50"


async def hostile(base: str, queries: int, concurrency: int) -> dict[int, int]:
    """The distinct queries, `concurrency` at a time; the count of each status."""
    statuses: dict[int, int] = {}
    todo = iter(range(queries))
    async with aiohttp.ClientSession(headers={"Accept-Encoding": "gzip"}) as session:

        async def one() -> None:
            for n in todo:
                async with session.get(f"{base}/api/v1/models?limit=500&min_context={n}") as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return statuses


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else float("nan")


def wrk(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    return float(found.group(1)) if found else float("nan")


def _memory_run(args: argparse.Namespace, base: str, pid: int) -> tuple[float, float, float, dict[int, int]]:
    """(baseline RSS, peak RSS sampled, VmHWM, statuses) of the hostile run, in MiB."""
    with urllib.request.urlopen(base + "/api/v1/models?limit=1", timeout=30) as r:
        r.read()
    time.sleep(1)
    baseline = rss_mib(pid)
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak.append(rss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    statuses = asyncio.run(hostile(base, args.queries, 8))
    stop.set()
    sampler.join()
    return baseline, max(peak), peak_rss_mib(pid), statuses


def _throughput(base: str, seconds: int) -> tuple[float, float]:
    """(cached req/s, bare req/s) with wrk on the same bytes."""
    with urllib.request.urlopen(base + HOT, timeout=30) as r:
        body = Path(tempfile.mkdtemp(prefix="modelmeta-cache-")) / "body.json"
        body.write_bytes(r.read())
    bare_port = free_port()
    bare = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "bare_server.py"), str(body), str(bare_port)])
    try:
        wait_up(f"http://127.0.0.1:{bare_port}/")
        wrk(base + HOT, 2)  # warm
        cached = wrk(base + HOT, seconds)
        bare_rps = wrk(f"http://127.0.0.1:{bare_port}{HOT}", seconds)
    finally:
        bare.terminate()
        bare.wait(10)
    return cached, bare_rps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-bytes", type=int, default=128 * MIB)
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    args = ap.parse_args()
    catalog = Path(tempfile.mkdtemp(prefix="modelmeta-cache-")) / "api.json"
    catalog.write_bytes(document("api-2026-07-02"))
    rows, extra = asyncio.run(_bench(args, catalog))
    print(table(rows))
    write_results("5-cache", rows, extra)


async def _bench(args: argparse.Namespace, catalog: Path) -> tuple[list[tuple[str, str, str, str]], dict[str, object]]:
    async with bench_env(CACHE_MAX_BYTES=str(args.max_bytes)) as (dsn, env):
        await load_catalog(dsn, env["REDIS_PREFIX"], catalog)
        port = free_port()
        web = subprocess.Popen([sys.executable, "-m", "services.cli", "web"], cwd=ROOT, env={**env, "PORT": str(port)})
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(base + "/readyz")
            baseline, peak, hwm, statuses = await asyncio.to_thread(_memory_run, args, base, web.pid)
            held, evictions = metric(base, "modelmeta_cache_bytes"), metric(base, "modelmeta_cache_evictions_total")
            throughput = await asyncio.to_thread(_throughput, base, args.wrk_seconds) if shutil.which("wrk") else None
        finally:
            web.terminate()
            web.wait(30)
    budget = args.max_bytes / MIB
    goal = baseline + budget + 64
    rows = [
        (
            f"{args.queries:,} distinct `limit=500` list queries, 8 at a time (CACHE_MAX_BYTES {budget:.0f} MiB)",
            f"peak RSS {max(peak, hwm):.0f} MiB",
            f"RSS before {baseline:.0f} MiB; goal < {goal:.0f} MiB (before + budget + 64)",
            f"{'met' if max(peak, hwm) < goal else 'missed'}: +{max(peak, hwm) - baseline:.0f} MiB",
        ),
        (
            "response cache after that run",
            f"{held / MIB:.1f} MiB held, {evictions:,.0f} evictions",
            f"CACHE_MAX_BYTES {budget:.0f} MiB",
            f"{held / args.max_bytes:.0%}",
        ),
    ]
    if throughput is not None:
        cached, bare_rps = throughput
        rows.append(
            (
                f"cached `GET {HOT}`, wrk -t2 -c32 -d{args.wrk_seconds}s",
                f"{cached:,.0f} req/s",
                f"{bare_rps:,.0f} req/s (bare aiohttp handler, same bytes)",
                f"{cached / bare_rps:.0%}",
            )
        )
    print(f"statuses: {statuses}")
    return rows, {"statuses": {str(k): v for k, v in statuses.items()}}


if __name__ == "__main__":
    main()
