"""History benchmark: what the versions of the catalog in time cost in storage, and `at=` latency.

(1) The two reference catalogs (api-2026-03-01, api-2026-07-02) imported by import-history into an
    empty database: the storage the versions add (model_versions, provider_versions and
    catalog_versions, with their indexes and TOAST) in bytes and as a share of the `models` table.
(2) The same for the 100,000-model synthetic catalog (benchmarks/synth.py, as scale_bench.py builds
    it) and its next version with 5% of the models changed, dated 2026-03-01 and 2026-07-02.
(3) On (2), with the response cache off: filtered lists at 2026-05-01 (the first document's
    catalog, read from the versions), p50 and p99 at 16 connections (target p99 < 50 ms), each
    beside the same list now; GET /api.json at that instant beside /api.json now (sequential: an
    answer is ~55 MB); and on (1), the same for the reference catalogs.

    python benchmarks/history_bench.py [--models 100000] [--providers 1000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_bench import free_port, load, wait_up
from benchmarks.common import REDIS_URL, ROOT, bench_env, table, write_results
from benchmarks.synth import generate, next_version
from shared.config import Settings
from shared.embedded import document
from shared.history import dated_documents, import_history
from shared.resources import close_context, open_context

AT = "2026-05-01"
LISTS = [
    "limit=50",
    "provider=provider-0001,provider-0002&limit=50",
    "capability=tool_call&limit=50",
    "capability=vision,reasoning&limit=50",
    "family=qwen&limit=50",
    "status=deprecated&limit=50",
    "min_context=1000000&limit=50",
    "max_input_cost=0.1&limit=50",
    "released_after=2026-06-01&limit=50",
    "include_removed=true&limit=50",
    "sort=input_cost&limit=50",
    "sort=-context&limit=50",
    "capability=vision&sort=input_cost&limit=50",
    "q=qwen&limit=50",
]
REFERENCE_LISTS = ["limit=50", "provider=openai,anthropic&limit=50", "capability=tool_call&sort=input_cost&limit=50"]
Row = tuple[str, str, str, str]


async def load_history(dsn: str, prefix: str, files: list[Path]) -> float:
    """import-history of these dated files, in this process; the seconds it took."""
    settings = Settings(
        database_url=dsn,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        modelsdev_url="file:///nonexistent/api.json",
        upstream_max_bytes=512 * 1024 * 1024,
    )
    ctx = await open_context(settings, client_name="history-bench")
    try:
        started = time.perf_counter()
        runs = await import_history(ctx, dated_documents([str(f) for f in files]))
        assert all(r["status"] == "succeeded" for r in runs), [(r["status"], r["error"]) for r in runs]
        return time.perf_counter() - started
    finally:
        await close_context(ctx)


async def storage(dsn: str) -> dict[str, int]:
    """Bytes of the versions and of `models` (after VACUUM ANALYZE, as autovacuum would leave them)."""
    from shared.db.pool import create_pool

    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        await pool.execute("VACUUM ANALYZE")
        row = await pool.fetchrow(
            """
            SELECT pg_total_relation_size('model_versions') + pg_total_relation_size('provider_versions')
                   + pg_total_relation_size('catalog_versions') AS versions,
                   pg_indexes_size('model_versions') + pg_indexes_size('provider_versions')
                   + pg_indexes_size('catalog_versions') AS version_indexes,
                   pg_total_relation_size('models') AS models,
                   (SELECT count(*) FROM model_versions) AS version_rows,
                   (SELECT count(*) FROM models) AS model_rows
            """
        )
        assert row is not None
        return dict(row)
    finally:
        await pool.close()


def storage_row(label: str, s: dict[str, int]) -> Row:
    return (
        f"storage the versions add, {label}",
        f"{s['versions'] / 1e6:.1f} MB ({s['version_rows']:,} model versions; "
        f"indexes {s['version_indexes'] / 1e6:.1f} MB of it)",
        f"{s['models'] / 1e6:.1f} MB (the models table, {s['model_rows']:,} rows)",
        f"{s['versions'] / s['models']:.0%} of models",
    )


@contextmanager
def web(env: dict[str, str]) -> Iterator[str]:
    """A web process with the response cache off; its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "web"],
        cwd=ROOT,
        env={**env, "PORT": str(port), "CACHE_ENABLED": "false"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(base + "/readyz")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def sequential(url: str, n: int) -> tuple[float, float, int]:
    """(median, worst) seconds of n GETs one after another, and the answer's size."""
    times, size = [], 0
    for _ in range(n):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=300) as r:
            size = len(r.read())
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), size


def write_synthetic(folder: Path, models: int, providers: int) -> list[Path]:
    base = generate(models, providers, seed=7)
    changed = next_version(base, changed=0.05, seed=8)
    files = [folder / "synth-2026-03-01.json", folder / "synth-2026-07-02.json"]
    files[0].write_text(json.dumps(base, separators=(",", ":")))
    files[1].write_text(json.dumps(changed, separators=(",", ":")))
    return files


async def reference(folder: Path, args: argparse.Namespace) -> list[Row]:
    files = []
    for name in ("api-2026-03-01", "api-2026-07-02"):
        files.append(folder / f"{name}.json")
        files[-1].write_bytes(document(name))
    async with bench_env() as (dsn, env):
        took = await load_history(dsn, env["REDIS_PREFIX"], files)
        sizes = await storage(dsn)
        with web(env) as base:
            at = sequential(f"{base}/api.json?at={AT}", args.documents)
            now = sequential(f"{base}/api.json", args.documents)
            lists = [(q, load(f"{base}/api/v1/models?{q}&at={AT}", 16, args.seconds)) for q in REFERENCE_LISTS]
    print(f"  reference catalogs imported in {took:.1f} s", flush=True)
    worst = max(lists, key=lambda x: x[1]["p99_ms"])
    return [
        storage_row("the two reference catalogs (03-01, 07-02)", sizes),
        (
            f"GET /api.json?at={AT} (reference catalogs: 3,053 models then), sequential, uncached",
            f"median {at[0] * 1000:.0f} ms, worst {at[1] * 1000:.0f} ms ({at[2] / 1e6:.1f} MB)",
            f"median {now[0] * 1000:.0f} ms, worst {now[1] * 1000:.0f} ms (/api.json now: 5,276 models)",
            f"{at[0] / now[0]:.2f}x",
        ),
        (
            f"uncached lists at={AT} (reference catalogs), 16 connections: worst p99 of {len(lists)} queries",
            f"{worst[1]['p99_ms']:.1f} ms ({worst[0]})",
            "50 ms (target)",
            f"{worst[1]['p99_ms'] / 50:.2f}x",
        ),
    ]


async def synthetic(folder: Path, args: argparse.Namespace) -> tuple[list[Row], list[tuple[str, Any, Any]]]:
    print(f"generating {args.models:,} models across {args.providers:,} providers ...", flush=True)
    files = write_synthetic(folder, args.models, args.providers)
    async with bench_env(UPSTREAM_MAX_BYTES=str(512 * 1024 * 1024)) as (dsn, env):
        took = await load_history(dsn, env["REDIS_PREFIX"], files)
        print(f"  synthetic catalogs imported in {took:.1f} s", flush=True)
        sizes = await storage(dsn)
        per_query = []
        with web(env) as base:
            for query in LISTS:
                q = query.replace(" ", "%20")
                at = load(f"{base}/api/v1/models?{q}&at={AT}", 16, args.seconds)
                now = load(f"{base}/api/v1/models?{q}", 16, args.seconds)
                at["one_ms"] = sequential(f"{base}/api/v1/models?{q}&at={AT}", 20)[0] * 1000
                now["one_ms"] = sequential(f"{base}/api/v1/models?{q}", 20)[0] * 1000
                per_query.append((query, at, now))
                print(
                    f"  {query}: at= p50 {at['p50_ms']:.1f} / p99 {at['p99_ms']:.1f} ms, one connection "
                    f"{at['one_ms']:.1f} ms; now p99 {now['p99_ms']:.1f} ms, one connection {now['one_ms']:.1f} ms"
                )
            doc_at = sequential(f"{base}/api.json?at={AT}", args.documents)
            doc_now = sequential(f"{base}/api.json", args.documents)
    filters = [(q, a, n) for q, a, n in per_query if not q.startswith("q=")]
    worst = max(filters, key=lambda x: x[1]["p99_ms"])
    errors = sum(a["errors"] + a["non_200"] for _, a, _ in per_query)
    rows = [
        storage_row(f"{args.models:,}-model synthetic catalog after its 5% change", sizes),
        (
            f"uncached lists at={AT}, {args.models:,} models, 16 connections: worst p99 of {len(filters)} queries",
            f"{worst[1]['p99_ms']:.1f} ms ({worst[0]}); median p50 "
            f"{statistics.median(a['p50_ms'] for _, a, _ in filters):.1f} ms",
            f"50 ms (target); the same list now: p99 {worst[2]['p99_ms']:.1f} ms",
            f"{worst[1]['p99_ms'] / 50:.2f}x",
        ),
        (
            f"the same lists one request at a time: worst median of {len(filters)} queries",
            f"{max(a['one_ms'] for _, a, _ in filters):.1f} ms at={AT}",
            f"{max(n['one_ms'] for _, _, n in filters):.1f} ms now",
            "",
        ),
        (
            f"GET /api.json?at={AT}, {args.models:,} models, sequential",
            f"median {doc_at[0]:.2f} s, worst {doc_at[1]:.2f} s ({doc_at[2] / 1e6:.0f} MB)",
            f"median {doc_now[0]:.2f} s, worst {doc_now[1]:.2f} s (/api.json now, {doc_now[2] / 1e6:.0f} MB)",
            f"{doc_at[0] / doc_now[0]:.2f}x",
        ),
        ("errors in those requests", str(int(errors)), "0", ""),
    ]
    return rows, per_query


async def main_async(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="modelmeta-history-"))
    rows = await reference(folder, args)
    more, per_query = await synthetic(folder, args)
    rows += more
    print(table(rows))
    print(f"per list at={AT} (16 connections p50 / p99 ms, one connection median; the same for the list now):")
    for query, at, now in per_query:
        print(
            f"  {at['p50_ms']:6.1f} / {at['p99_ms']:6.1f} / {at['one_ms']:5.1f}   "
            f"now {now['p50_ms']:6.1f} / {now['p99_ms']:6.1f} / {now['one_ms']:5.1f}   {query}"
        )
    write_results("6-history", rows, {"queries": [(q, a["p50_ms"], a["p99_ms"], n["p99_ms"]) for q, a, n in per_query]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100_000)
    ap.add_argument("--providers", type=int, default=1_000)
    ap.add_argument("--seconds", type=float, default=3.0, help="load per query")
    ap.add_argument("--documents", type=int, default=5, help="sequential GET /api.json of each kind")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
