"""SQL that reads the catalog for the API: model lists, one model, providers, history, changes."""

from __future__ import annotations

import re
from typing import Any

from shared.db import Queryable
from shared.errors import BadRequest
from shared.listing import CAPABILITIES, SORTS, ModelQuery

#: The API's model object as JSON text, kept up to date by the writers (migration 0002).
MODEL_JSON = "api_doc"


def _words(text: str) -> list[str]:
    """The words of a search, lower-cased: runs of letters, digits, `.` and `-`."""
    return re.findall(r"[\w.-]+", text.lower())


def _escape_like(text: str) -> str:
    """`text` matched literally by LIKE: its wildcards and the escape character escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Where:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, sql: str) -> None:
        self.parts.append(sql)

    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "true"


def _filters(q: ModelQuery) -> _Where:
    w = _Where()
    if not q.include_removed:
        w.add("removed_at IS NULL")
    if q.providers:
        w.add(f"provider_id = ANY({w.arg(q.providers)}::text[])")
    for cap in q.capabilities:
        w.add(CAPABILITIES[cap])
    if q.input_modalities:
        w.add(f"input_modalities @> {w.arg(q.input_modalities)}::text[]")
    if q.output_modalities:
        w.add(f"output_modalities @> {w.arg(q.output_modalities)}::text[]")
    if q.families:
        w.add(f"family = ANY({w.arg(q.families)}::text[])")
    if q.statuses:
        named = [s for s in q.statuses if s != "active"]
        cond = [f"status = ANY({w.arg(named)}::text[])"] if named else []
        if "active" in q.statuses:
            cond.append("status IS NULL")
        w.add("(" + " OR ".join(cond) + ")")
    if q.min_context is not None:
        w.add(f"context_limit >= {w.arg(q.min_context)}")
    if q.min_output is not None:
        w.add(f"output_limit >= {w.arg(q.min_output)}")
    if q.max_input_cost is not None:
        w.add(f"input_cost <= {w.arg(q.max_input_cost)}")
    if q.max_output_cost is not None:
        w.add(f"output_cost <= {w.arg(q.max_output_cost)}")
    if q.released_after is not None:
        w.add(f"release_date >= {w.arg(q.released_after)}")
    if q.released_before is not None:
        w.add(f"release_date <= {w.arg(q.released_before)}")
    return w


async def list_models(
    conn: Queryable, q: ModelQuery, *, known_total: int | None = None
) -> tuple[list[str], int, list[Any] | None]:
    """(model JSON texts, total matching, position after the last row or None at the end).

    known_total: the total, when the caller already knows it for this catalog version (it does
    not depend on sort, cursor or limit), so that it is not counted again.
    """
    w = _filters(q)
    words = _words(q.q) if q.q else []
    if q.q:
        # Every word a substring of the model's id, name, family or provider (trigram-indexed), so
        # partial names match; with no word in the query, the whole query as one substring.
        for word in words or [q.q.lower()]:
            w.add(f"search_text LIKE {w.arg('%' + _escape_like(word) + '%')}::text")
    where = w.sql()
    # The page query takes every argument of the count query (w) and then its own.
    page = _Where()
    page.parts, page.args = list(w.parts), list(w.args)
    rank_sql = None
    if q.q and not q.sort:  # a search is ranked unless another order is asked for
        # Best match first: the exact name or id, then a name that starts with the query, then
        # whole-word (full-text) matches, then the rest; shorter names first among equals.
        text = page.arg(q.q.lower()) + "::text"
        prefix = page.arg(_escape_like(q.q.lower()) + "%") + "::text"
        rank_sql = (
            f"((CASE WHEN lower(name) = {text} OR lower(model_id) = {text} THEN 4 ELSE 0 END)"
            f" + (CASE WHEN lower(name) LIKE {prefix} OR lower(model_id) LIKE {prefix} THEN 2 ELSE 0 END)"
            f" + (CASE WHEN search @@ plainto_tsquery('simple', {text}) THEN 1 ELSE 0 END)"
            f" - length(name) / 1000.0)::float8"
        )

    if q.sort:
        asc_key, desc_key, typ = SORTS[q.sort]
        key = desc_key if q.descending else asc_key
        direction = "DESC" if q.descending else "ASC"
    elif rank_sql:
        key, typ, direction = rank_sql, "float8", "DESC"
    else:
        key, typ, direction = "provider_id", "text", "ASC"
    if q.cursor is not None:
        value, pid, mid = q.cursor
        try:
            typed = {"float8": float, "bigint": int, "text": str}[typ](value)
        except (TypeError, ValueError):
            raise BadRequest("invalid cursor", [("cursor", "not a cursor of this list")]) from None
        v, p, m = page.arg(typed), page.arg(pid), page.arg(mid)
        op = "<" if direction == "DESC" else ">"
        page.add(f"({key} {op} {v}::{typ} OR ({key} = {v}::{typ} AND (provider_id, model_id) > ({p}, {m})))")
    limit = page.arg(q.limit + 1)
    # One round trip: the count is an uncorrelated subquery, evaluated once.
    count = f"(SELECT count(*) FROM models WHERE {where})" if known_total is None else str(int(known_total))
    rows = await conn.fetch(
        f"SELECT {MODEL_JSON} AS doc, {key} AS k, provider_id, model_id, {count} AS total "
        f"FROM models WHERE {page.sql()} ORDER BY {key} {direction}, provider_id, model_id LIMIT {limit}",
        *page.args,
    )
    if rows:
        total = rows[0]["total"]
    elif known_total is not None:
        total = known_total
    else:  # past the last page, or nothing matches: the count still has to be told
        total = await conn.fetchval(f"SELECT count(*) FROM models WHERE {where}", *w.args)
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    # The sort value travels as text: JSON has no Infinity, and repr() of a float round-trips exactly.
    position = [str(rows[-1]["k"]), rows[-1]["provider_id"], rows[-1]["model_id"]] if more and rows else None
    return [r["doc"] for r in rows], int(total), position


async def get_model(conn: Queryable, provider_id: str, model_id: str) -> str | None:
    """One model (listed or removed) as API JSON text."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT {MODEL_JSON} FROM models WHERE provider_id = $1 AND model_id = $2", provider_id, model_id
    )


async def get_models_for_compare(conn: Queryable, keys: list[tuple[str, str]]) -> list[Any]:
    """Rows (provider_id, model_id, raw, doc) for the given ids, in no particular order."""
    return list(
        await conn.fetch(
            f"SELECT provider_id, model_id, raw, {MODEL_JSON} AS doc FROM models "
            "WHERE (provider_id, model_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
    )


async def model_history(conn: Queryable, provider_id: str, model_id: str) -> list[Any]:
    """A model's changes, newest first."""
    return list(
        await conn.fetch(
            "SELECT seq, at, run_id, provider_id, model_id, kind, fields FROM model_changes "
            "WHERE provider_id = $1 AND model_id = $2 ORDER BY seq DESC LIMIT 1000",
            provider_id,
            model_id,
        )
    )


async def changes_since(
    conn: Queryable, *, after_seq: int, since_time: Any, providers: list[str], kinds: list[str], limit: int
) -> list[Any]:
    """The change feed in seq order."""
    return list(
        await conn.fetch(
            """
            SELECT seq, at, run_id, provider_id, model_id, kind, fields FROM model_changes
            WHERE seq > $1 AND ($2::timestamptz IS NULL OR at >= $2)
              AND (cardinality($3::text[]) = 0 OR provider_id = ANY($3))
              AND (cardinality($4::text[]) = 0 OR kind = ANY($4))
            ORDER BY seq LIMIT $5
            """,
            after_seq,
            since_time,
            providers,
            kinds,
            limit,
        )
    )


#: The API's provider object: the upstream provider object as received, plus modelmeta's fields.
#: content_hash changes whenever the provider or any of its models does (mirrors compare it).
PROVIDER_JSON = """(p.raw || jsonb_build_object(
    'model_count', (SELECT count(*) FROM models m WHERE m.provider_id = p.id AND m.removed_at IS NULL),
    'content_hash', p.content_hash,
    'first_seen_at', api_time(p.first_seen_at),
    'updated_at', api_time(p.updated_at),
    'removed_at', api_time(p.removed_at)))::text"""


async def list_providers(conn: Queryable, include_removed: bool = False) -> list[str]:
    """Provider objects as JSON text, by id."""
    rows = await conn.fetch(
        f"SELECT {PROVIDER_JSON} FROM providers p WHERE $1 OR p.removed_at IS NULL ORDER BY p.id",
        include_removed,
    )
    return [r[0] for r in rows]


async def get_provider(conn: Queryable, provider_id: str) -> str | None:
    """One provider object as JSON text."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT {PROVIDER_JSON} FROM providers p WHERE p.id = $1", provider_id
    )


async def capability_counts(conn: Queryable) -> dict[str, int]:
    cols = ", ".join(f"count(*) FILTER (WHERE {cond}) AS {name}" for name, cond in CAPABILITIES.items())
    row = await conn.fetchrow(f"SELECT {cols} FROM models WHERE removed_at IS NULL")
    assert row is not None
    return {name: int(row[name]) for name in CAPABILITIES}


async def catalog_document(conn: Queryable) -> str:
    """The listed catalog in models.dev's own shape, as JSON text, built by PostgreSQL."""
    text = await conn.fetchval(
        """
        SELECT coalesce(
            jsonb_object_agg(p.id, p.raw || jsonb_build_object('models', coalesce(m.models, '{}'))), '{}'
        )::text
        FROM providers p
        LEFT JOIN LATERAL (
            SELECT jsonb_object_agg(model_id, raw) AS models FROM models
            WHERE provider_id = p.id AND removed_at IS NULL
        ) m ON true
        WHERE p.removed_at IS NULL
        """
    )
    return str(text)


async def benchmarks_for(conn: Queryable, keys: list[tuple[str, str]]) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT provider_id, model_id, benchmark, score, metric, source, measured_at FROM model_benchmarks "
            "WHERE (provider_id, model_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
            "ORDER BY benchmark, metric, source",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
    )


async def all_benchmarks(conn: Queryable, limit: int = 5000) -> list[Any]:
    return list(
        await conn.fetch(
            "SELECT provider_id, model_id, benchmark, score, metric, source, measured_at FROM model_benchmarks "
            "ORDER BY provider_id, model_id, benchmark LIMIT $1",
            limit,
        )
    )


async def upsert_benchmarks(conn: Queryable, rows: list[tuple[Any, ...]]) -> int:
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
    rows = await conn.fetch(
        "SELECT provider_id, model_id FROM models "
        "WHERE (provider_id, model_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r[0], r[1]) for r in rows}
