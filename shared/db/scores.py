"""SQL of model benchmark results: imports (the `model_benchmarks` table) and reads of every result
of a model, imported and from its model card (the view `model_benchmark_results`)."""

from __future__ import annotations

from typing import Any

from shared.db import Queryable
from shared.errors import BadRequest

#: Every result of a model (migration 0012's view): imported ones (origin 'import') and its linked
#: card's (origin 'models.dev', with the card's id and the entry's qualifiers).
_RESULTS = "model_benchmark_results"
_COLUMNS = (
    "provider_id, model_id, benchmark, score, metric, source, measured_at, origin, canonical_id, ordinal, "
    + ", ".join(
        f"CASE WHEN jsonb_typeof(result -> '{f}') IN ('string', 'number') THEN result ->> '{f}' END AS {f}"
        for f in ("harness", "variant", "dataset", "version")
    )
)
#: The order of every list of results, and the keyset of its paging: an import is unique by its
#: first five, a card's result by its model and ordinal (a model links to one card).
_KEY_COLUMNS = ("provider_id", "model_id", "benchmark", "metric", "source", "origin", "ordinal")
_KEY = f"({', '.join(_KEY_COLUMNS)})"


def _unnest(keys: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys]


#: These models ($1 provider ids, $2 model ids, pairwise). The `= ANY` conditions are what the
#: planner pushes into each branch of the view (onto the models' primary key); the pairs alone
#: would be matched after the view's join of every offering with its card.
_OF_MODELS = (
    "provider_id = ANY($1::text[]) AND model_id = ANY($2::text[]) "
    "AND (provider_id, model_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
)


async def scores_for(conn: Queryable, keys: list[tuple[str, str]]) -> list[Any]:
    """Every result of these models (compare), imported and from their cards, by benchmark,
    metric, origin, source and the card's order."""
    return list(
        await conn.fetch(
            f"SELECT {_COLUMNS} FROM {_RESULTS} WHERE {_OF_MODELS} "
            "ORDER BY benchmark, metric, origin, source, ordinal, provider_id, model_id",
            *_unnest(keys),
        )
    )


async def list_scores(
    conn: Queryable, keys: list[tuple[str, str]] | None, *, after: list[str] | None, limit: int
) -> tuple[list[Any], int, list[str] | None]:
    """One page of results (of these models, or all), the total and the position after the page
    (its key as text: a cursor carries text)."""
    where = _OF_MODELS if keys is not None else "($1::text[] IS NULL AND $2::text[] IS NULL)"
    pids, mids = _unnest(keys) if keys is not None else (None, None)
    position: list[Any] | None = None
    if after is not None:
        try:
            position = [*after[:6], int(after[6])]
        except ValueError:
            raise BadRequest("invalid cursor", [("cursor", "not a cursor of this list")]) from None
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM {_RESULTS} WHERE {where}) AS total "
        f"FROM {_RESULTS} WHERE {where} AND ($3::text IS NULL OR {_KEY} > "
        "($3, $4, $5, $6, $7, $8, $9::integer)) "
        f"ORDER BY {_KEY} LIMIT $10",
        pids,
        mids,
        *(position or [None] * 7),
        limit + 1,
    )
    total = (
        rows[0]["total"] if rows else await conn.fetchval(f"SELECT count(*) FROM {_RESULTS} WHERE {where}", pids, mids)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    return list(rows), int(total), [str(last[c]) for c in _KEY_COLUMNS] if last else None


async def upsert_scores(conn: Queryable, rows: list[tuple[Any, ...]]) -> int:
    """Rows of (provider_id, model_id, benchmark, metric, source, score, measured_at)."""
    await conn.executemany(
        """
        INSERT INTO model_benchmarks (provider_id, model_id, benchmark, metric, source, score, measured_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (provider_id, model_id, benchmark, metric, source)
        DO UPDATE SET score = EXCLUDED.score, measured_at = EXCLUDED.measured_at, imported_at = now()
        """,
        rows,
    )
    return len(rows)


async def existing_models(conn: Queryable, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (provider_id, model_id) are in the catalog (listed or removed)."""
    rows = await conn.fetch(
        "SELECT provider_id, model_id FROM models "
        "WHERE (provider_id, model_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        *_unnest(keys),
    )
    return {(r[0], r[1]) for r in rows}
