"""API benchmark: a cached and an uncached model list beside a bare aiohttp handler (the ceiling).

(a) GET /api/v1/models?provider=openai&limit=50 from the in-process cache;
(b) the same with the cache disabled (every request queries PostgreSQL);
(c) a bare aiohttp handler returning the same bytes.
Each is driven by wrk (benchmarks/loadgen.py where wrk is missing), one after another; 32 connections.
Targets: (a) at least 70% of (c)'s requests per second; (b) p99 under 20 ms.

    python benchmarks/api_bench.py [--catalog PATH] [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REDIS_URL, ROOT, bench_env, reference_catalog, table, write_results, wrk
from shared import refresh
from shared.config import Settings
from shared.resources import close_context, open_context

URL_PATH = "/api/v1/models?provider=openai&limit=50"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def wait_up(url: str) -> None:
    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def load(url: str, connections: int, seconds: float) -> dict[str, float]:
    """Drive `url` with wrk (a C load generator that is not the bottleneck; identity encoding, as
    the bare handler serves), or with benchmarks/loadgen.py where wrk is not installed."""
    measured = wrk(url, connections, seconds)
    if measured is not None:
        return measured
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "loadgen.py"),
            url,
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


async def load_catalog(dsn: str, prefix: str, path: Path) -> None:
    settings = Settings(database_url=dsn, redis_url=REDIS_URL, redis_prefix=prefix, modelsdev_url=f"file://{path}")
    ctx = await open_context(dataclasses.replace(settings))
    try:
        run, _ = await refresh.request_refresh(ctx.pool, trigger="cli")
        for pid in await refresh.plan_refresh(ctx, run["id"]):
            await refresh.sync_provider(ctx, run["id"], pid)
    finally:
        await close_context(ctx)


async def main_async(args: argparse.Namespace) -> None:
    async with bench_env() as (dsn, env):
        await load_catalog(dsn, env["REDIS_PREFIX"], args.catalog.resolve())
        ports = {"cached": free_port(), "uncached": free_port(), "bare": free_port()}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "services.cli", "web"], cwd=ROOT, env={**env, "PORT": str(ports["cached"])}
            ),
            subprocess.Popen(
                [sys.executable, "-m", "services.cli", "web"],
                cwd=ROOT,
                env={**env, "PORT": str(ports["uncached"]), "CACHE_ENABLED": "false"},
            ),
        ]
        try:
            base = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
            wait_up(base["cached"] + "/readyz")
            wait_up(base["uncached"] + "/readyz")
            with urllib.request.urlopen(base["cached"] + URL_PATH) as r:
                body = r.read()
            with tempfile.NamedTemporaryFile(delete=False, suffix=".json") as f:
                f.write(body)
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "benchmarks" / "bare_server.py"), f.name, str(ports["bare"])]
                )
            )
            wait_up(base["bare"] + "/")
            results = {
                k: load(base[k] + URL_PATH, args.connections, args.seconds) for k in ("bare", "cached", "uncached")
            }
        finally:
            for p in procs:
                p.terminate()
                p.wait(20)
    a, b, c = results["cached"], results["uncached"], results["bare"]
    print(
        f"catalog: {args.catalog.name}; GET {URL_PATH} ({len(body)} bytes); {args.connections} connections, "
        f"{args.seconds:g} s each; cores: {os.cpu_count()}"
    )
    errors = a["errors"] + a["non_200"] + b["errors"] + b["non_200"]
    rows = [
        (
            f"cached GET {URL_PATH}, {args.connections} connections",
            f"{a['rps']:,.0f} req/s, p50 {a['p50_ms']:.1f} ms, p99 {a['p99_ms']:.1f} ms",
            f"{c['rps']:,.0f} req/s (bare aiohttp handler, same bytes)",
            f"{a['rps'] / c['rps']:.0%} (target >= 70%)",
        ),
        (
            "the same, response cache off (every request queries PostgreSQL)",
            f"{b['rps']:,.0f} req/s, p50 {b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms",
            "p99 20 ms (target)",
            f"{b['p99_ms'] / 20:.2f}x",
        ),
        ("errors and non-200 answers", str(int(errors)), "0", ""),
    ]
    print(table(rows))
    write_results("2-api", rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    args.catalog = args.catalog or reference_catalog()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
