"""A small aiohttp load generator: N connections hammering one URL (or a mix) for T seconds.

python benchmarks/loadgen.py URL [URL ...] --connections 16 --seconds 10   # prints JSON stats
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

import aiohttp


async def run(urls: list[str], connections: int, seconds: float, warmup: float = 1.0) -> dict[str, Any]:
    """Each connection asks for a random one of `urls` in a loop; latencies after the warm-up."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        measure_from = time.perf_counter() + warmup
        deadline = measure_from + seconds

        async def one(n: int) -> None:
            rng = random.Random(n)
            while (t0 := time.perf_counter()) < deadline:
                try:
                    async with session.get(rng.choice(urls)) as r:
                        await r.read()
                except (aiohttp.ClientError, TimeoutError) as e:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                    continue
                if t0 >= measure_from:
                    latencies.append(time.perf_counter() - t0)
                    statuses[r.status] = statuses.get(r.status, 0) + 1

        await asyncio.gather(*(one(n) for n in range(connections)))
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": sum(errors.values()),
        "non_200": sum(v for k, v in statuses.items() if k != 200),
        "statuses": statuses,
        "error_kinds": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("urls", nargs="+")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a.urls, a.connections, a.seconds, a.warmup))))


if __name__ == "__main__":
    main()
