"""Model benchmark scores (results such as MMLU of a model; not our performance scripts in
benchmarks/): parse an import (JSON list or CSV), check the models exist, store them."""

from __future__ import annotations

import csv
import io

import asyncpg
import msgspec
import structlog
from redis.asyncio import Redis

from shared import events
from shared.db import catalog_writes, scores
from shared.errors import BadRequest
from shared.schemas.api import MAX_BENCHMARK_RESULTS, BenchmarkIn, BenchmarkList

log = structlog.get_logger(__name__)
#: Content types of a CSV import.
CSV_TYPES = ("text/csv", "application/csv")


def parse_benchmarks(data: bytes, *, csv_format: bool) -> list[BenchmarkIn]:
    """Decode an import; BadRequest says what is wrong."""
    try:
        if csv_format:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
            items = [
                msgspec.convert({k: v for k, v in row.items() if v not in ("", None)}, BenchmarkIn, strict=False)
                for row in reader
            ]
        else:
            items = msgspec.json.decode(data, type=BenchmarkList)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, csv.Error, RecursionError) as e:
        raise BadRequest(f"invalid benchmark data: {e}", [("body", str(e))]) from None
    if not items:
        raise BadRequest("no benchmark results", [("body", "expected at least one result")])
    if len(items) > MAX_BENCHMARK_RESULTS:
        raise BadRequest("too many benchmark results", [("body", f"expected at most {MAX_BENCHMARK_RESULTS} results")])
    return items


async def import_benchmarks(pool: asyncpg.Pool, redis: Redis | None, prefix: str, items: list[BenchmarkIn]) -> int:
    """Store results for models that exist (all or nothing) and tell every web process."""
    keys = [(pid, mid) for pid, _, mid in (it.model.partition("/") for it in items)]
    known = await scores.existing_models(pool, keys)
    errors = [(f"[{i}].model", f"no model {it.model!r}") for i, it in enumerate(items) if keys[i] not in known]
    if errors:
        raise BadRequest("invalid benchmark results", errors[:50])
    rows = [
        (k[0], k[1], it.benchmark, it.metric or "", it.source or "", it.score, it.date)
        for k, it in zip(keys, items, strict=True)
    ]
    providers = sorted({k[0] for k in keys})
    async with pool.acquire() as conn, conn.transaction():
        n = await scores.upsert_scores(conn, rows)
        # compare shows benchmarks: a new version makes every web process drop those providers.
        version = await catalog_writes.bump_catalog_version(conn)
    if redis is not None:
        try:
            await events.publish(redis, prefix, events.Invalidation(version, providers))
        except Exception as e:
            log.warning("invalidation_publish_failed", error=f"{type(e).__name__}: {e}", catalog_version=version)
    log.info("benchmarks_imported", count=n, providers=len(providers))
    return n
