"""Whole-catalog documents after a refresh (issue 14, part 5): the first `GET /api.json` after a
refresh that changed a 100,000-model catalog, through a web process with its response cache on.

Asked at once, as the run closes (before the debounce ends, the request builds the document as the
code before did for every first request: the baseline), and asked once the web process has built
it again in the background (it should find it built). Each both as is and as `Accept-Encoding:
gzip, deflate, br` (what most clients send: answered br, compressed once per catalog version).

    python benchmarks/documents_bench.py [--models 100000] [--providers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_bench import free_port, wait_up
from benchmarks.common import ROOT, bench_env, table, timed_refresh, worker_processes, write_results
from benchmarks.synth import generate, next_version
from shared.db.pool import create_pool

CODINGS = {"identity": {}, "br": {"Accept-Encoding": "gzip, deflate, br"}}


def timed_get(url: str, headers: dict[str, str]) -> tuple[float, int, int]:
    """(seconds, bytes, X-Catalog-Version) of one GET."""
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=300) as r:
        size = len(r.read())
        version = int(r.headers["X-Catalog-Version"])
    return time.perf_counter() - started, size, version


def prebuilt(base: str) -> float:
    """How many documents the web process has built again ahead of a request (its metrics)."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^modelmeta_documents_prebuilt_total\{outcome="built"\} ([\d.e+]+)$', text, re.M)
    return float(m[1]) if m else 0.0


async def refresh_to(pool: Any, source: Path, body: bytes, send: Any) -> int:
    """Refresh from this document; the catalog version it ends at."""
    source.write_bytes(body)
    seconds, run = await timed_refresh(pool, send)
    assert run["status"] == "succeeded", (run["status"], run["error"])
    print(f"  refresh: {seconds:.1f} s", flush=True)
    return int(await pool.fetchval("SELECT version FROM catalog_state"))


def ask(url: str, coding: str, version: int, label: str) -> float:
    seconds, size, got = timed_get(url, CODINGS[coding])
    assert got == version, (label, coding, got, version)
    print(f"  {label}, {coding}: {seconds:.3f} s ({size / 1e6:.1f} MB)", flush=True)
    return seconds


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="modelmeta-documents-"))
    print(f"generating {args.models:,} models across {args.providers:,} providers ...", flush=True)
    base = generate(args.models, args.providers, seed=7)
    docs = [base]
    for seed in (8, 9, 10):  # three refreshes, each with 5% of the models changed
        docs.append(next_version(docs[-1], changed=0.05, seed=seed))
    bodies = [json.dumps(d, separators=(",", ":")).encode() for d in docs]
    del base, docs
    source = work / "api.json"
    async with bench_env(MODELSDEV_URL=f"file://{source}", UPSTREAM_MAX_BYTES=str(512 * 1024 * 1024)) as (dsn, env):
        from shared.config import Settings
        from shared.sender import Sender

        send = Sender.from_settings(Settings.from_env()).plan_refresh
        pool = await create_pool(dsn, min_size=1, max_size=2)
        with worker_processes(env, 1, 8):
            await asyncio.sleep(3)
            await refresh_to(pool, source, bodies[0], send)
            port = free_port()
            argv = [sys.executable, "-m", "services.cli", "web"]
            web = subprocess.Popen(argv, cwd=ROOT, env={**env, "PORT": str(port)})
            try:
                results = await measure(f"http://127.0.0.1:{port}", pool, source, bodies, send)
            finally:
                web.terminate()
                web.wait(30)
        await pool.close()
    report(results, args)


async def measure(base: str, pool: Any, source: Path, bodies: list[bytes], send: Any) -> dict[str, Any]:
    wait_up(base + "/readyz")
    url = base + "/api.json"
    version = int(await pool.fetchval("SELECT version FROM catalog_state"))
    cold = {coding: ask(url, coding, version, "first build") for coding in CODINGS}
    at_once = {}
    for coding, body in zip(CODINGS, bodies[1:3], strict=True):  # a refresh each: each the first request
        version = await refresh_to(pool, source, body, send)
        await asyncio.sleep(0.2)  # the last invalidation event heard (well within the debounce)
        at_once[coding] = ask(url, coding, version, "asked as the refresh closes")
    built = prebuilt(base)
    version = await refresh_to(pool, source, bodies[3], send)
    closed = time.perf_counter()
    for _ in range(1200):  # two minutes at most
        if prebuilt(base) > built:
            break
        await asyncio.sleep(0.1)
    background = time.perf_counter() - closed
    print(f"  built again in the background {background:.1f} s after the run closed", flush=True)
    later = {coding: ask(url, coding, version, "asked once built again") for coding in CODINGS}
    return {"cold": cold, "at_once": at_once, "later": later, "background": background}


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    rows = [
        (
            f"first GET /api.json after a refresh, {args.models:,} models, {coding}",
            f"{r['later'][coding] * 1000:.0f} ms (built again {r['background']:.1f} s after the run closed)",
            f"{r['at_once'][coding]:.2f} s asked at once (built by the request, as before)",
            f"{r['later'][coding] / r['at_once'][coding]:.3f}x",
        )
        for coding in CODINGS
    ]
    print(table(rows))
    print(f"load average (1 min) at the end: {load:.2f}")
    write_results("3-scale-documents", rows, {"cold": r["cold"], "load": load})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100_000)
    ap.add_argument("--providers", type=int, default=1_000)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
