"""Scale: a 100,000-model, 1,000-provider synthetic catalog, 20 times today's.

Refreshes through a real worker process, each beside the single-process COPY floor:
(1) full refresh into an empty database, (2) a refresh with 5% of the models changed (rows written
are counted: it must not rewrite unchanged rows), (3) a refresh with nothing changed (target < 1 s).
Then the API over that catalog with its response cache off: every filter, sort and a text search,
p50 and p99 at 16 connections (target p99 < 50 ms), with each query's EXPLAIN ANALYZE written to
.bench/explain.txt. Peak memory of the worker and the web process (target: under 1 GiB each).

    python benchmarks/scale_bench.py [--models 100000] [--providers 1000] [--seconds 3] [--refresh-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_bench import free_port, load, wait_up
from benchmarks.common import (
    BENCH_DIR,
    ROOT,
    bench_env,
    copy_floor,
    peak_rss_mib,
    table,
    timed_refresh,
    worker_processes,
    write_results,
    wrk,
)
from benchmarks.synth import generate, next_version, searches
from shared.db.pool import create_pool

QUERIES = [
    "limit=50",
    "provider=provider-0001,provider-0002&limit=50",
    "capability=tool_call&limit=50",
    "capability=vision,reasoning&limit=50",
    "capability=audio_output&limit=50",
    "input_modalities=image,pdf&limit=50",
    "output_modalities=image&limit=50",
    "family=qwen&limit=50",
    "status=deprecated&limit=50",
    "status=active&limit=50",
    "min_context=1000000&limit=50",
    "min_output=100000&limit=50",
    "max_input_cost=0.1&limit=50",
    "max_output_cost=1&capability=tool_call&limit=50",
    "released_after=2026-06-01&limit=50",
    "released_before=2023-03-01&limit=50",
    "include_removed=true&limit=50",
    "sort=name&limit=50",
    "sort=-name&limit=50",
    "sort=release_date&limit=50",
    "sort=-release_date&limit=50",
    "sort=input_cost&limit=50",
    "sort=-input_cost&limit=50",
    "sort=output_cost&limit=50",
    "sort=-output_cost&limit=50",
    "sort=context&limit=50",
    "sort=-context&limit=50",
    "capability=vision&sort=input_cost&limit=50",
    "q=qwen&limit=50",
    "q=gpt 4.5 pro&limit=50",
    "q=turb&limit=50",
]


class _Capture:
    """Stands in for a pool to capture the SQL a query function runs, then EXPLAINs it."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.plans: list[str] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        plan = await self.pool.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + sql, *args)
        self.plans.append("\n".join(r[0] for r in plan))
        return list(await self.pool.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.pool.fetchval(sql, *args)


async def explain(pool: Any) -> str:
    from urllib.parse import parse_qsl

    from services.api.params import decode
    from shared.db.api_reads import list_models
    from shared.listing import model_query
    from shared.schemas.api import ModelListQuery

    out = []
    for query in QUERIES:
        cap = _Capture(pool)
        await list_models(cap, model_query(decode(dict(parse_qsl(query)), ModelListQuery)))
        out.append(f"== GET /api/v1/models?{query}\n{cap.plans[0]}\n")
    return "\n".join(out)


async def rows_written(pool: Any, since_xid: int) -> int:
    """Model rows inserted or updated since that transaction id (a fresh database: no wraparound)."""
    return int(await pool.fetchval("SELECT count(*) FROM models WHERE xmin::text::bigint >= $1", since_xid))


def wait_search_built(base_url: str, models: int, timeout: float = 300.0) -> None:
    """Until the web process answers searches from its in-memory structure of every model."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(base_url + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        if f"modelmeta_search_index_models {float(models)}" in metrics:
            return
        time.sleep(0.5)
    raise TimeoutError("the web process did not build its search structure")


async def phases(pool: Any, run_id: int) -> str:
    """Where a run's time went, from its provider-runs: the plan (the run's start to the first sync
    transaction's start), the syncs (to the last one's end) and the close (to the run's end)."""
    row = await pool.fetchrow(
        """
        SELECT extract(epoch FROM min(p.started_at) - r.started_at)::float8 AS plan,
               extract(epoch FROM max(p.finished_at) - min(p.started_at))::float8 AS syncs,
               count(p.*) AS provider_runs,
               extract(epoch FROM r.finished_at - max(p.finished_at))::float8 AS close,
               extract(epoch FROM r.started_at - r.requested_at)::float8 AS queued
        FROM refresh_runs r LEFT JOIN refresh_provider_runs p ON p.run_id = r.id
        WHERE r.id = $1 GROUP BY r.id
        """,
        run_id,
    )
    if row is None or row["plan"] is None:
        return "no provider-runs"
    return (
        f"queued {row['queued']:.2f} s, plan {row['plan']:.2f} s, "
        f"{row['provider_runs']} provider-runs synced in {row['syncs']:.2f} s, close {row['close']:.2f} s"
    )


def query_rows(queries: list[tuple[str, float, float]]) -> list[tuple[str, str, str, str]]:
    """Summary rows of the per-query (query, p50, p99) figures: filters and sorts, then search."""
    rows = []
    for label, group in (
        ("filters and sorts", [q for q in queries if not q[0].startswith("q=")]),
        ("text search (q=)", [q for q in queries if q[0].startswith("q=")]),
    ):
        worst = max(group, key=lambda x: x[2])
        median = sorted(q[1] for q in group)[len(group) // 2]
        rows.append(
            (
                f"uncached lists at 16 connections, {label}: worst p99 of {len(group)} queries",
                f"{worst[2]:.1f} ms ({worst[0]}); median p50 {median:.1f} ms",
                "50 ms (target)",
                f"{worst[2] / 50:.2f}x",
            )
        )
    return rows


@contextmanager
def profiled(out: Path | None, name: str, pids: list[int]) -> Iterator[None]:
    """py-spy (collapsed stacks, with idle frames) of the worker processes while the block runs,
    into out/<name>-<pid>.txt; nothing when out is None."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            [
                "py-spy",
                "record",
                "--idle",
                "--format",
                "raw",
                "--rate",
                "200",
                "-p",
                str(pid),
                "-o",
                str(out / f"{name}-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)


def search_paths(texts: list[str]) -> list[str]:
    return [f"/api/v1/models?q={quote(text)}&limit=50" for text in texts]


def refresh_rows(
    results: dict[str, Any], n: int, providers: int, floor_full: float, floor_changed: float
) -> list[tuple[str, str, str, str]]:
    """The three refreshes beside their baselines: the COPY floor, and for the 5%-changed one the
    full refresh of the same run too (the goal: at most 25% of it)."""
    full, ch, nc = results["full"], results["changed"], results["nochange"]
    return [
        (
            f"full refresh, {n:,} models / {providers:,} providers, into an empty database",
            f"{full[0]:.1f} s ({full[1]:,} rows written)",
            f"{floor_full:.1f} s (COPY floor)",
            f"{full[0] / floor_full:.2f}x (target <= 2x)",
        ),
        (
            "refresh with 5% of the models changed",
            f"{ch[0]:.2f} s ({ch[1]:,} rows written)",
            f"{full[0]:.1f} s (the full refresh above); {floor_changed:.1f} s (COPY floor, every row)",
            f"{ch[0] / full[0]:.0%} of the full (target <= 25%); {ch[0] / floor_changed:.2f}x the floor",
        ),
        ("refresh with nothing changed", f"{nc[0]:.2f} s ({nc[1]:,} rows written)", "1 s (target)", f"{nc[0]:.2f}x"),
    ]


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="modelmeta-scale-"))
    print(f"generating {args.models:,} models across {args.providers:,} providers ...", flush=True)
    base = generate(args.models, args.providers, seed=7)
    search_texts = searches(base, 20_000, seed=3)
    seen = {text.lower() for text in search_texts}  # the server lower-cases searches
    later_texts = [text for text in searches(base, 40_000, seed=4) if text.lower() not in seen][:20_000]
    changed = next_version(base, changed=0.05, seed=8)
    paths = {"full": work / "full.json", "changed": work / "changed.json"}
    paths["full"].write_text(json.dumps(base, separators=(",", ":")))
    paths["changed"].write_text(json.dumps(changed, separators=(",", ":")))
    del base, changed
    source = work / "api.json"
    source.write_bytes(paths["full"].read_bytes())

    floor_full, n = await copy_floor(paths["full"])
    floor_changed, _ = await copy_floor(paths["changed"])
    results: dict[str, Any] = {}
    async with bench_env(MODELSDEV_URL=f"file://{source}", UPSTREAM_MAX_BYTES=str(512 * 1024 * 1024)) as (dsn, env):
        from shared.config import Settings
        from shared.sender import Sender

        plan_refresh = Sender.from_settings(Settings.from_env()).plan_refresh

        pool = await create_pool(dsn, min_size=1, max_size=4)
        with worker_processes(env, 1, 8) as workers:
            await asyncio.sleep(3)
            for name, doc in (("full", "full"), ("changed", "changed"), ("nochange", "changed")):
                source.write_bytes(paths[doc].read_bytes())
                xid = int(await pool.fetchval("SELECT txid_current()"))
                with profiled(args.profile, name, [w.pid for w in workers]):
                    seconds, run = await timed_refresh(pool, plan_refresh)
                assert run["status"] in ("succeeded", "unchanged"), (name, run["status"], run["error"])
                results[name] = (seconds, await rows_written(pool, xid), run)
                print(f"  {name}: {seconds:.2f} s, {results[name][1]:,} rows written", flush=True)
                print(f"    {await phases(pool, run['id'])}", flush=True)
            worker_peak = max(peak_rss_mib(p.pid) for p in workers)
        if args.refresh_only:
            await pool.close()
            print(table(refresh_rows(results, n, args.providers, floor_full, floor_changed)))
            return

        plans = await explain(pool)
        BENCH_DIR.mkdir(exist_ok=True)
        (BENCH_DIR / "explain.txt").write_text(plans)
        port = free_port()
        web = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "web"],
            cwd=ROOT,
            env={**env, "PORT": str(port), "CACHE_ENABLED": "false"},
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_up(base_url + "/readyz")
            wait_search_built(base_url, n)
            api: list[tuple[str, dict[str, float]]] = []
            for query in QUERIES:
                stats = load(f"{base_url}/api/v1/models?{query.replace(' ', '%20')}", 16, args.seconds)
                api.append((query, stats))
                print(f"  {query}: p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms", flush=True)
            # Distinct searches, none asked twice (the same URL again finds remembered sets): the
            # process's first, then as many others (none asked before) once it has served those.
            distinct, later = (
                wrk(base_url + "/api/v1/models", 16, args.seconds * 2, paths=search_paths(texts)) or {}
                for texts in (search_texts, later_texts)
            )
            print(f"  distinct searches, first: {distinct}; then others: {later}", flush=True)
            started = time.perf_counter()
            with urllib.request.urlopen(base_url + "/api.json", timeout=120) as r:
                size = len(r.read())
            api_json_s = time.perf_counter() - started
            web_peak = peak_rss_mib(web.pid)
        finally:
            web.terminate()
            web.wait(30)
        await pool.close()

    errors = sum(s["errors"] + s["non_200"] for _, s in api)
    rows = [
        *refresh_rows(results, n, args.providers, floor_full, floor_changed),
        *query_rows([(q, s["p50_ms"], s["p99_ms"]) for q, s in api]),
        *(
            (
                f"uncached text search at 16 connections, distinct searches as typed (none repeated), {when}",
                f"{stats.get('rps', 0):,.0f} req/s, p50 {stats.get('p50_ms', 0):.1f} ms, "
                f"p99 {stats.get('p99_ms', 0):.1f} ms",
                "50 ms (target)",
                f"{stats.get('p99_ms', 0) / 50:.2f}x",
            )
            for when, stats in (
                ("a new process's first", distinct),
                ("then as many others, none asked before (steady state)", later),
            )
        ),
        (
            "errors in those queries",
            str(int(errors + sum(s.get("errors", 0) + s.get("non_200", 0) for s in (distinct, later)))),
            "0",
            "",
        ),
        ("GET /api.json of the whole catalog", f"{api_json_s:.2f} s ({size / 1e6:.0f} MB)", "", ""),
        (
            "peak memory: worker / web",
            f"{worker_peak:.0f} MiB / {web_peak:.0f} MiB",
            "1024 MiB (limit)",
            f"{max(worker_peak, web_peak) / 1024:.2f}x",
        ),
    ]
    print(table(rows))
    print("per query (p50 / p99 ms):")
    for query, s in api:
        print(f"  {s['p50_ms']:6.1f} / {s['p99_ms']:6.1f}  {query}")
    print(f"EXPLAIN ANALYZE of each query: {BENCH_DIR / 'explain.txt'}")
    write_results("3-scale", rows, {"queries": [(q, s["p50_ms"], s["p99_ms"]) for q, s in api]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100_000)
    ap.add_argument("--providers", type=int, default=1_000)
    ap.add_argument("--seconds", type=float, default=3.0, help="load per query")
    ap.add_argument("--profile", type=Path, help="py-spy the worker during each refresh, into this directory")
    ap.add_argument("--refresh-only", action="store_true", help="the three refreshes only, not the API")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
