"""Benchmark results: parse an import (JSON list or CSV), check the models exist, store them."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated

import asyncpg
import msgspec
import structlog
from redis.asyncio import Redis

from shared import events
from shared.api_models import Name
from shared.db import catalog_writes
from shared.db import models as q
from shared.errors import BadRequest
from shared.listing import MODEL_ID_PATTERN

log = structlog.get_logger(__name__)
MAX_RESULTS = 10_000


class BenchmarkIn(msgspec.Struct, forbid_unknown_fields=True):
    """One benchmark result to import."""

    model: Annotated[str, msgspec.Meta(pattern=f"^{MODEL_ID_PATTERN}$", max_length=400)]
    benchmark: Name
    score: float
    metric: Name | None = None
    source: Name | None = None
    date: date | None = None


BenchmarkList = Annotated[list[BenchmarkIn], msgspec.Meta(min_length=1, max_length=MAX_RESULTS)]


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
    if len(items) > MAX_RESULTS:
        raise BadRequest("too many benchmark results", [("body", f"expected at most {MAX_RESULTS} results")])
    return items


async def import_benchmarks(pool: asyncpg.Pool, redis: Redis | None, prefix: str, items: list[BenchmarkIn]) -> int:
    """Store results for models that exist (all or nothing) and tell every web process."""
    keys = [tuple(it.model.split("/", 1)) for it in items]
    known = await q.existing_models(pool, keys)  # type: ignore[arg-type]
    errors = [(f"[{i}].model", f"no model {it.model!r}") for i, it in enumerate(items) if keys[i] not in known]
    if errors:
        raise BadRequest("invalid benchmark results", errors[:50])
    rows = [
        (k[0], k[1], it.benchmark, it.metric or "", it.source or "", it.score, it.date)
        for k, it in zip(keys, items, strict=True)
    ]
    providers = sorted({k[0] for k in keys})
    async with pool.acquire() as conn, conn.transaction():
        n = await q.upsert_benchmarks(conn, rows)
        # compare shows benchmarks: a new version makes every web process drop those providers.
        version = await catalog_writes.bump_catalog_version(conn)
    if redis is not None:
        try:
            await events.publish(redis, prefix, events.Invalidation(version, providers))
        except Exception as e:
            log.warning("invalidation_publish_failed", error=str(e), catalog_version=version)
    log.info("benchmarks_imported", count=n, providers=len(providers))
    return n
