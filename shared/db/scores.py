"""SQL of model benchmark scores (the `model_benchmarks` table): imports and reads."""

from __future__ import annotations

from typing import Any

from shared.db import Queryable

_COLUMNS = "provider_id, model_id, benchmark, score, metric, source, measured_at"
#: The order of every list of scores, and the keyset of its paging (the table's primary key).
_KEY = "(provider_id, model_id, benchmark, metric, source)"


def _unnest(keys: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys]


async def scores_for(conn: Queryable, keys: list[tuple[str, str]]) -> list[Any]:
    """Every score of these models (compare), by benchmark, metric and source."""
    return list(
        await conn.fetch(
            f"SELECT {_COLUMNS} FROM model_benchmarks "
            "WHERE (provider_id, model_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
            "ORDER BY benchmark, metric, source",
            *_unnest(keys),
        )
    )


async def list_scores(
    conn: Queryable, keys: list[tuple[str, str]] | None, *, after: list[str] | None, limit: int
) -> tuple[list[Any], int, list[str] | None]:
    """One page of scores (of these models, or all), the total and the position after the page."""
    where = "($1::text[] IS NULL OR (provider_id, model_id) IN (SELECT * FROM unnest($1::text[], $2::text[])))"
    pids, mids = _unnest(keys) if keys is not None else (None, None)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM model_benchmarks WHERE {where}) AS total "
        f"FROM model_benchmarks WHERE {where} AND ($3::text[] IS NULL OR {_KEY} > "
        "($3[1], $3[2], $3[3], $3[4], $3[5])) "
        f"ORDER BY {_KEY} LIMIT $4",
        pids,
        mids,
        after,
        limit + 1,
    )
    total = (
        rows[0]["total"]
        if rows
        else await conn.fetchval(f"SELECT count(*) FROM model_benchmarks WHERE {where}", pids, mids)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    position = [last[c] for c in ("provider_id", "model_id", "benchmark", "metric", "source")] if last else None
    return list(rows), int(total), position


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
