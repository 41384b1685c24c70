"""Model benchmark results: import (admin), all of them, and one model's (imported and from its
model card, each with its `origin`)."""

from __future__ import annotations

from aiohttp import web

from services.api import keys
from services.api.respond import uncached
from shared.db import api_reads, scores
from shared.errors import NotFound
from shared.listing import decode_cursor, encode_cursor
from shared.model_scores import import_benchmarks
from shared.schemas.api import (
    BenchmarkIn,
    BenchmarksQuery,
    Imported,
    ModelBenchmarksQuery,
    ModelPath,
    Page,
    benchmark_object,
)

#: The kind of a results cursor: its position is the 7 columns of shared.db.scores' keyset.
_CURSOR = "benchmark-result"


async def post_benchmarks(request: web.Request, *, body: list[BenchmarkIn]) -> web.Response:
    settings = request.app[keys.SETTINGS]
    n = await import_benchmarks(request.app[keys.POOL], request.app[keys.REDIS], settings.redis_prefix, body)
    return uncached(Imported(imported=n), status=201)


async def _page(
    request: web.Request, models: list[tuple[str, str]] | None, query: ModelBenchmarksQuery
) -> web.Response:
    after = decode_cursor(query.cursor, _CURSOR, 7) if query.cursor else None
    rows, total, last = await scores.list_scores(request.app[keys.POOL], models, after=after, limit=query.limit)
    nxt = encode_cursor(_CURSOR, last) if last else None
    return uncached(Page(data=[benchmark_object(r) for r in rows], total=total, next_cursor=nxt))


async def list_benchmarks(request: web.Request, *, query: BenchmarksQuery) -> web.Response:
    models = [(pid, mid) for pid, _, mid in (i.partition("/") for i in query.ids)]
    return await _page(request, models or None, query)


async def model_benchmarks(request: web.Request, *, query: ModelBenchmarksQuery, path: ModelPath) -> web.Response:
    if await api_reads.get_model(request.app[keys.POOL], path.provider_id, path.model_id) is None:
        raise NotFound(f"no model {path.provider_id}/{path.model_id}")
    return await _page(request, [(path.provider_id, path.model_id)], query)
