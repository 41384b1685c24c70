"""Compare: 2 to 10 models side by side, with differences, the cheapest, the largest context,
cost estimates and benchmark scores (the logic is shared/compare.py)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.history import at_version, point_in_time, reader
from services.api.respond import Cached, encode
from shared import compare
from shared.db import api_reads, scores
from shared.errors import NotFound
from shared.schemas.api import CompareQuery, Comparison


def _tokens(query: CompareQuery) -> compare.Tokens | None:
    given = (query.input_tokens, query.output_tokens, query.cached_tokens)
    if all(t is None for t in given):
        return None
    return compare.Tokens(*(t or 0 for t in given))


async def compare_models(request: web.Request, *, query: CompareQuery) -> Cached:
    pool = request.app[keys.POOL]
    pit = await point_in_time(request, query.at)  # the models and prices then (issue 13)
    models = reader(request, pit)
    wanted = [(pid, mid) for pid, _, mid in (i.partition("/") for i in query.ids)]
    tokens = _tokens(query)

    async def build() -> bytes:
        rows = {(r["provider_id"], r["model_id"]): r for r in await api_reads.get_models_for_compare(models, wanted)}
        missing = [f"{p}/{m}" for p, m in wanted if (p, m) not in rows]
        if missing:
            raise NotFound(f"no model {', '.join(missing)}")
        ordered = [rows[k] for k in wanted]
        summary = compare.compare([(f"{p}/{m}", rows[p, m]["raw"]) for p, m in wanted], tokens)
        comparison = Comparison(
            data=[msgspec.Raw(r["doc"].encode()) for r in ordered],
            differences=summary.differences,
            cheapest=summary.cheapest,
            largest_context=summary.largest_context,
            cost_estimates=summary.cost_estimates,
            benchmarks=compare.score_table(await scores.scores_for(pool, wanted)),
        )
        return encode(comparison)

    # Benchmarks are today's: an answer about a past catalog is cached as briefly as the current one.
    return at_version(request, pit, Cached(frozenset(p for p, _ in wanted) | frozenset({ALL}), build), final=False)
