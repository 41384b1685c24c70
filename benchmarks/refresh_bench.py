"""Refresh benchmark: the full pipeline through real worker processes beside the single-process floor.

(a) a full refresh of api-2026-07-02.json into an empty database, from enqueue to run closed,
    through `modelmeta worker` processes on the Redis broker;
(b) the floor: one process reads the same file, flattens it and COPY-upserts every model in one
    transaction, no queue;
(c) a no-change refresh of the same document (target: under 0.5 s).

    python benchmarks/refresh_bench.py [--catalog PATH] [--processes 1] [--threads 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    bench_env,
    copy_floor,
    reference_catalog,
    table,
    timed_refresh,
    worker_processes,
    write_results,
)
from shared.db.pool import create_pool


async def pipeline(path: Path, processes: int, threads: int) -> tuple[float, float, int, tuple[int, float]]:
    async with bench_env(MODELSDEV_URL=f"file://{path.resolve()}") as (dsn, env):
        from shared.config import Settings
        from shared.sender import Sender

        plan_refresh = Sender.from_settings(Settings.from_env()).plan_refresh
        pool = await create_pool(dsn, min_size=1, max_size=2)
        with worker_processes(env, processes, threads):
            await asyncio.sleep(4)  # let the workers boot

            full, run = await timed_refresh(pool, plan_refresh)
            assert run["status"] == "succeeded", run["status"]
            count = await pool.fetchval("SELECT count(*) FROM models")
            cards = await pool.fetchrow(
                "SELECT added, duration_ms FROM refresh_provider_runs WHERE run_id = $1 AND provider_id = '@models'",
                run["id"],
            )
            nochange, run = await timed_refresh(pool, plan_refresh)
            assert run["status"] == "unchanged", run["status"]
        await pool.close()
        models_doc = (int(cards["added"]), cards["duration_ms"] / 1000) if cards is not None else (0, 0.0)
        return full, nochange, int(count), models_doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    args.catalog = args.catalog or reference_catalog()
    floor_s, floor_n = asyncio.run(copy_floor(args.catalog))
    full_s, nochange_s, n, (cards, cards_s) = asyncio.run(pipeline(args.catalog, args.processes, args.threads))
    assert n == floor_n, (n, floor_n)
    print(
        f"catalog: {args.catalog.name}, {n} models; cores: {os.cpu_count()}; "
        f"workers: {args.processes} processes x {args.threads} threads"
    )
    rows = [
        (
            f"full refresh of {args.catalog.name} ({n:,} models), enqueue to run closed, "
            f"{args.processes} worker x {args.threads} threads",
            f"{full_s:.2f} s",
            f"{floor_s:.2f} s (one process, one COPY-upsert transaction)",
            f"{full_s / floor_s:.2f}x (target <= 4x)",
        ),
        ("no-change refresh of the same document", f"{nochange_s:.3f} s", "0.5 s (target)", f"{nochange_s / 0.5:.2f}x"),
        (
            f"of the full refresh: the models document ({cards} cards, their benchmark rows and links), "
            "its one transaction",
            f"{cards_s:.3f} s",
            f"{full_s:.2f} s (the full refresh)",
            f"{cards_s / full_s:.1%}",
        ),
    ]
    print(table(rows))
    write_results("1-refresh", rows)


if __name__ == "__main__":
    main()
