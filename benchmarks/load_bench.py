"""Load: 1,000 concurrent connections held against one web process for 60 s, mixed routes.

Reports errors (target: zero), p50/p99, requests per second and the web process's memory every
10 s (target: flat), beside the same load against a bare aiohttp handler (the ceiling).

    python benchmarks/load_bench.py [--connections 1000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from benchmarks.api_bench import free_port, load_catalog, wait_up
from benchmarks.common import ROOT, bench_env, reference_catalog, table, write_results
from benchmarks.loadgen import run

ROUTES = [
    "/api/v1/models?limit=50",
    "/api/v1/models?provider=openai&limit=50",
    "/api/v1/models?capability=tool_call,vision&sort=input_cost&limit=20",
    "/api/v1/models?q=claude&limit=10",
    "/api/v1/models/openai/gpt-4o",
    "/api/v1/models/compare?ids=openai/gpt-4o,anthropic/claude-sonnet-4-5&input_tokens=10000&output_tokens=1000",
    "/api/v1/capabilities",
    "/api/v1/providers",
    "/api/v1/providers/anthropic",
    "/api/v1/changes?limit=50",
    "/healthz",
]


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main_async(args: argparse.Namespace) -> None:
    _raise_fd_limit()
    async with bench_env() as (dsn, env):
        await load_catalog(dsn, env["REDIS_PREFIX"], args.catalog.resolve())
        port, bare_port = free_port(), free_port()
        web = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "web"],
            cwd=ROOT,
            env={**env, "PORT": str(port)},
            preexec_fn=_raise_fd_limit,
        )
        bare_body = Path(tempfile.mkdtemp(prefix="modelmeta-load-")) / "body.json"
        try:
            base = f"http://127.0.0.1:{port}"
            wait_up(base + "/readyz")
            with urllib.request.urlopen(base + ROUTES[1], timeout=30) as r:
                bare_body.write_bytes(r.read())
            bare = subprocess.Popen(
                [sys.executable, str(ROOT / "benchmarks" / "bare_server.py"), str(bare_body), str(bare_port)],
                preexec_fn=_raise_fd_limit,
            )
            try:
                wait_up(f"http://127.0.0.1:{bare_port}/")
                memory: list[float] = [rss_mib(web.pid)]
                stop = threading.Event()

                def sample() -> None:
                    while not stop.wait(10):
                        memory.append(rss_mib(web.pid))

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                mixed = await run([base + r for r in ROUTES], args.connections, args.seconds, warmup=0)
                stop.set()
                memory.append(rss_mib(web.pid))
                ceiling = await run(
                    [f"http://127.0.0.1:{bare_port}/"], args.connections, min(args.seconds, 20), warmup=0
                )
            finally:
                bare.terminate()
                bare.wait(10)
        finally:
            web.terminate()
            web.wait(30)
    bad = mixed["non_200"] + mixed["errors"]
    rows = [
        (
            f"{args.connections:,} connections held for {args.seconds:g} s, {len(ROUTES)} mixed routes",
            f"{mixed['rps']:,.0f} req/s, p50 {mixed['p50_ms']:.0f} ms, p99 {mixed['p99_ms']:.0f} ms",
            f"{ceiling['rps']:,.0f} req/s, p99 {ceiling['p99_ms']:.0f} ms (bare aiohttp, one route)",
            f"{mixed['rps'] / ceiling['rps']:.0%}",
        ),
        ("errors (4xx, 5xx, connection errors)", str(bad), "0 (target)", ""),
        (
            "web memory during the run (every 10 s)",
            " -> ".join(f"{m:.0f}" for m in memory) + " MiB",
            "flat (target)",
            f"{memory[-1] / memory[1]:.2f}x of the first sample",
        ),
    ]
    print(f"statuses: {mixed['statuses']}; errors: {mixed['error_kinds']}")
    print(table(rows))
    write_results("4-load", rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    args.catalog = args.catalog or reference_catalog()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
