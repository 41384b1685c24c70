"""SQL of the catalog in time (migration 0009): model and provider versions with the interval in
which each was current, when each catalog version was committed, the catalog as it stood at an
instant, and a model's price timeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from shared.catalog import MODEL_COLUMNS, ProviderRecord
from shared.db import Conn, Queryable

# -- writes: in the transaction of each provider's sync ------------------------------------------


async def run_changes_at(conn: Queryable, run_id: int) -> datetime | None:
    """The time a run's changes are recorded at when it is not the time it runs (an import's date)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT changes_at FROM refresh_runs WHERE id = $1", run_id
    )


async def set_run_changes_at(conn: Queryable, run_id: int, at: datetime) -> None:
    """Date a run's changes (and the versions they make) at `at` instead of the time it runs."""
    await conn.execute("UPDATE refresh_runs SET changes_at = $2 WHERE id = $1", run_id, at)


async def stamp_version(conn: Conn, version: int, at: datetime | None) -> datetime:
    """Record when a catalog version was committed and return that time, which its changes and
    versions carry: `at` (an import's date) or now, and never before the time of the version before
    it (a live one strictly after), so that catalog versions and times share one order."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """
        INSERT INTO catalog_versions (version, at)
        SELECT $1, CASE WHEN $2::timestamptz IS NULL THEN greatest(now(), last + interval '1 microsecond')
                        ELSE greatest($2::timestamptz, last) END
        FROM (SELECT max(at) AS last FROM catalog_versions) l
        RETURNING at
        """,
        version,
        at,
    )


_CLOSE_MODELS = """
WITH closed AS (
    UPDATE model_versions v SET valid_to = $3
    FROM unnest($1::text[], $2::text[]) AS k (provider_id, model_id)
    WHERE v.provider_id = k.provider_id AND v.model_id = k.model_id AND v.valid_to IS NULL
    RETURNING v.provider_id, v.model_id, v.first_seen_at, v.provider_name, v.raw
), gone AS (
    INSERT INTO model_versions (provider_id, model_id, valid_from, removed_at, first_seen_at, provider_name, raw)
    SELECT c.provider_id, c.model_id, $3, $3, c.first_seen_at, c.provider_name, c.raw
    FROM closed c JOIN unnest($4::text[], $5::text[]) AS r (provider_id, model_id)
        ON (r.provider_id, r.model_id) = (c.provider_id, c.model_id)
)
SELECT provider_id, model_id, first_seen_at FROM closed
"""

_PROVIDER_VERSION = """
WITH closed AS (
    UPDATE provider_versions SET valid_to = $2 WHERE id = $1 AND valid_to IS NULL
    RETURNING first_seen_at, raw
)
INSERT INTO provider_versions (id, valid_from, removed_at, first_seen_at, content_hash, raw)
SELECT $1, $2, CASE WHEN $3::jsonb IS NULL THEN $2 END, coalesce(c.first_seen_at, $2), coalesce($4, ''),
       coalesce($3::jsonb, c.raw)
FROM (SELECT) one LEFT JOIN closed c ON true
WHERE coalesce($3::jsonb, c.raw) IS NOT NULL
"""

VERSION_COLUMNS = ("provider_id", "model_id", "valid_from", "first_seen_at", "provider_name", "raw")


async def record_provider_version(
    conn: Conn, provider_id: str, at: datetime, provider: ProviderRecord | None, slice_hash: str | None
) -> None:
    """Close a provider's current version and open its next at `at`: its new object, or (None: it
    left the source) a removed version keeping its last one."""
    raw = provider.raw if provider is not None else None
    await conn.execute(_PROVIDER_VERSION, provider_id, at, raw, slice_hash if raw is not None else None)


#: A model whose version closes: (provider_id, model_id).
ModelKey = tuple[str, str]


async def record_model_versions(
    conn: Conn,
    at: datetime,
    closing: Sequence[ModelKey],
    removed: Sequence[ModelKey],
    opening: Sequence[tuple[str, str, str, Any]],
) -> None:
    """Close the current versions of the models that syncs added again, updated or removed
    (`closing`; a model never stored before has none), and open their next ones at `at`: a removed
    version keeping its last object for those `removed`, and the listed version of each of
    `opening` ((provider_id, model_id, provider_name, raw): the models added or updated), first
    seen when its closed version was (or at `at`). Several providers' syncs at once: one statement
    and one COPY."""
    first_seen: dict[ModelKey, datetime] = {}
    if closing:
        keys = ([k[0] for k in closing], [k[1] for k in closing])
        closed = await conn.fetch(_CLOSE_MODELS, *keys, at, [k[0] for k in removed], [k[1] for k in removed])
        first_seen = {(r["provider_id"], r["model_id"]): r["first_seen_at"] for r in closed}
    if opening:
        await conn.copy_records_to_table(
            "model_versions",
            records=[(pid, mid, at, first_seen.get((pid, mid), at), name, raw) for pid, mid, name, raw in opening],
            columns=VERSION_COLUMNS,
        )


# -- reads -----------------------------------------------------------------------------------------


async def newest_change(conn: Queryable) -> datetime | None:
    """When the newest catalog version that changed models or providers was committed."""
    return await conn.fetchval("SELECT max(at) FROM catalog_versions")  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class VersionAt:
    """The catalog version in force at an instant."""

    version: int | None  # the newest catalog version committed at or before it; None before any
    at: datetime | None  # when that version was committed
    newest: int | None  # the newest catalog version of all


async def version_at(conn: Queryable, at: datetime) -> VersionAt:
    """The catalog version in force at `at`, and the newest one."""
    row = await conn.fetchrow(
        """
        SELECT v.version, v.at, n.newest
        FROM (SELECT max(version) AS newest FROM catalog_versions) n
        LEFT JOIN LATERAL (
            SELECT version, at FROM catalog_versions WHERE at <= $1 ORDER BY at DESC, version DESC LIMIT 1
        ) v ON true
        """,
        at,
    )
    assert row is not None
    return VersionAt(row["version"], row["at"], row["newest"])


def _relations(at: datetime) -> str:
    """`models` and `providers` as they stood at `at`, with the columns of those tables (the search
    columns and the API object as migrations 0001 and 0002 define them), as common table
    expressions that shadow the tables in the query they head (and `model_search`, migration 0011's
    narrow search table, derived from them). Links to canonical models are not versioned: the API
    object of a past model carries none (an answer about the past never changes), and the link
    columns are today's, for the benchmark filters and sorts, whose answers are not final. `at` is a
    datetime, never request text, so it is written into the SQL: each catalog version's queries are
    the same statements."""
    t = f"'{at.isoformat()}'::timestamptz"
    model_columns = ", ".join(f"v.{c}" for c in MODEL_COLUMNS if c not in ("content_hash", "raw_sha256"))
    return f"""models AS NOT MATERIALIZED (
    SELECT {model_columns}, v.first_seen_at, v.valid_from AS updated_at, v.removed_at,
        lower(v.provider_id || '/' || v.model_id || ' ' || v.name || ' ' || coalesce(v.family, '') || ' '
              || v.provider_name) AS search_text,
        setweight(to_tsvector('simple'::regconfig, coalesce(v.name, '')), 'A')
            || setweight(to_tsvector('simple'::regconfig, replace(v.model_id, '/', ' ')), 'A')
            || setweight(to_tsvector('simple'::regconfig, coalesce(v.family, '')), 'B')
            || setweight(to_tsvector('simple'::regconfig, v.provider_id || ' ' || v.provider_name), 'C') AS search,
        cur.canonical_id, cur.canonical_link,
        model_api_doc(v.provider_id, v.model_id, v.raw, v.first_seen_at, v.valid_from, v.removed_at,
                      NULL, NULL) AS api_doc
    FROM model_versions v
    LEFT JOIN public.models cur ON (cur.provider_id, cur.model_id) = (v.provider_id, v.model_id)
    WHERE v.valid_from <= {t} AND (v.valid_to IS NULL OR v.valid_to > {t})
), providers AS NOT MATERIALIZED (
    SELECT p.id, p.raw ->> 'name' AS name, jsonb_as_text_array(p.raw -> 'env') AS env, p.raw ->> 'npm' AS npm,
        p.raw ->> 'api' AS api, p.raw ->> 'doc' AS doc, p.raw, p.content_hash, p.first_seen_at,
        p.valid_from AS updated_at, p.removed_at
    FROM provider_versions p WHERE p.valid_from <= {t} AND (p.valid_to IS NULL OR p.valid_to > {t})
), model_search AS NOT MATERIALIZED (
    SELECT provider_id, model_id, removed_at IS NULL AS listed, search_text AS haystack,
        tsvector_to_array(search) AS lexemes, lower(name) AS name_l, lower(model_id) AS model_l,
        least(length(name), 999) AS name_len
    FROM models
)"""


class _CatalogAt:
    """Runs read queries against the catalog at an instant: each is headed by `_relations`."""

    def __init__(self, target: Queryable, at: datetime) -> None:
        self._target = target
        self._relations = _relations(at)

    def _sql(self, sql: str) -> str:
        body = sql.lstrip()
        for keyword in ("WITH RECURSIVE", "WITH"):
            if body[: len(keyword)].upper() == keyword and body[len(keyword) : len(keyword) + 1].isspace():
                return f"{keyword} {self._relations}, {body[len(keyword) :]}"
        return f"WITH {self._relations}\n{body}"

    async def fetch(self, sql: str, *args: Any, **kwargs: Any) -> list[Any]:
        return list(await self._target.fetch(self._sql(sql), *args, **kwargs))

    async def fetchrow(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._target.fetchrow(self._sql(sql), *args, **kwargs)

    async def fetchval(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._target.fetchval(self._sql(sql), *args, **kwargs)


def catalog_at(target: Queryable, at: datetime) -> Queryable:
    """Something to hand the API's read functions (shared.db.api_reads) instead of a pool or a
    connection, so that they answer from the catalog as it stood at `at`, with their own SQL: the
    same filters, sorts, search and objects. Those functions only call fetch, fetchrow and fetchval."""
    return cast("Queryable", _CatalogAt(target, at))


async def price_timeline(conn: Queryable, provider_id: str, model_id: str) -> list[Any]:
    """(valid_from, valid_to, cost) for each interval in which a model was listed with the same
    `cost` object (NULL when it had none), oldest first; valid_to is NULL while it is current."""
    return list(
        await conn.fetch(
            """
            SELECT min(valid_from) AS valid_from,
                   CASE WHEN bool_or(valid_to IS NULL) THEN NULL ELSE max(valid_to) END AS valid_to,
                   (array_agg(cost))[1] AS cost
            FROM (
                SELECT valid_from, valid_to, removed_at, cost, count(*) FILTER (WHERE starts) OVER w AS period
                FROM (
                    SELECT valid_from, valid_to, removed_at, raw -> 'cost' AS cost,
                           lag(raw -> 'cost') OVER w IS DISTINCT FROM raw -> 'cost'
                           OR coalesce(lag(removed_at IS NOT NULL) OVER w, true)
                           OR lag(valid_to) OVER w IS DISTINCT FROM valid_from AS starts
                    FROM model_versions WHERE provider_id = $1 AND model_id = $2
                    WINDOW w AS (ORDER BY valid_from)
                ) v
                WINDOW w AS (ORDER BY valid_from)
            ) g
            WHERE removed_at IS NULL
            GROUP BY period ORDER BY min(valid_from)
            """,
            provider_id,
            model_id,
        )
    )
