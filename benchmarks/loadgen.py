"""A small aiohttp load generator: N connections hammering one URL for T seconds; prints JSON stats.

python benchmarks/loadgen.py URL --connections 16 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp


async def run(url: str, connections: int, seconds: float, warmup: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        deadline = measure_from + seconds

        async def one() -> None:
            nonlocal errors
            while True:
                t0 = time.perf_counter()
                if t0 >= deadline:
                    return
                try:
                    async with session.get(url) as r:
                        await r.read()
                        status = r.status
                except aiohttp.ClientError:
                    errors += 1
                    continue
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    latencies.append(t1 - t0)
                    statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one() for _ in range(connections)))
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
        "non_200": sum(v for k, v in statuses.items() if k != 200),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a.url, a.connections, a.seconds, a.warmup))))


if __name__ == "__main__":
    main()
