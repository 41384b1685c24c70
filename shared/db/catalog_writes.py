"""SQL that writes the catalog (providers, models, their change log, the catalog version), with
the reads those writes depend on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from shared.catalog import MODEL_COLUMNS, ProviderRecord
from shared.db import Conn, Queryable

_UPDATE_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in MODEL_COLUMNS if c not in ("provider_id", "model_id"))


async def catalog_is_empty(conn: Queryable) -> bool:
    """True before any provider was ever stored."""
    return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM providers)")


async def listed_model_count(conn: Queryable) -> int:
    """How many models are listed now."""
    return int(await conn.fetchval("SELECT count(*) FROM models WHERE removed_at IS NULL"))


async def listed_provider_hashes(conn: Conn) -> dict[str, str]:
    """content_hash of every listed provider."""
    rows = await conn.fetch("SELECT id, content_hash FROM providers WHERE removed_at IS NULL")
    return {r["id"]: r["content_hash"] for r in rows}


async def provider_ids(conn: Queryable) -> list[str]:
    """Every provider ever stored."""
    return [r["id"] for r in await conn.fetch("SELECT id FROM providers")]


async def model_states(conn: Conn, provider_id: str) -> dict[str, tuple[str, bool, str | None]]:
    """model_id -> (content_hash, listed, sha256 of the bytes last received) for every model this
    provider ever had."""
    rows = await conn.fetch(
        "SELECT model_id, content_hash, removed_at IS NULL AS listed, raw_sha256 FROM models WHERE provider_id = $1",
        provider_id,
    )
    return {r["model_id"]: (r["content_hash"], r["listed"], r["raw_sha256"]) for r in rows}


async def model_raws(conn: Conn, provider_id: str, model_ids: Sequence[str]) -> dict[str, Any]:
    """The stored raw objects of some models."""
    rows = await conn.fetch(
        "SELECT model_id, raw FROM models WHERE provider_id = $1 AND model_id = ANY($2::text[])",
        provider_id,
        list(model_ids),
    )
    return {r["model_id"]: r["raw"] for r in rows}


async def upsert_provider(
    conn: Conn, p: ProviderRecord, slice_hash: str, at: datetime | None = None
) -> tuple[str | None, bool]:
    """Insert or update a provider; return its previous name (None when new) and whether it changed.
    `at`: the time of the change when it is not now (history imports)."""
    row = await conn.fetchrow(
        """
        WITH old AS (SELECT name, raw, removed_at FROM providers WHERE id = $1)
        INSERT INTO providers AS p (id, name, env, npm, api, doc, raw, content_hash, first_seen_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()), coalesce($9, now()))
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, env = EXCLUDED.env, npm = EXCLUDED.npm, api = EXCLUDED.api,
            doc = EXCLUDED.doc, raw = EXCLUDED.raw, content_hash = EXCLUDED.content_hash,
            removed_at = NULL,
            updated_at = CASE WHEN p.raw IS DISTINCT FROM EXCLUDED.raw OR p.removed_at IS NOT NULL
                              THEN EXCLUDED.updated_at ELSE p.updated_at END
        RETURNING (SELECT name FROM old) AS old_name,
            NOT EXISTS (SELECT 1 FROM old WHERE old.raw = p.raw AND old.removed_at IS NULL) AS changed
        """,
        p.id,
        p.name,
        p.env,
        p.npm,
        p.api,
        p.doc,
        p.raw,
        slice_hash,
        at,
    )
    assert row is not None
    return row["old_name"], row["changed"]


async def remove_provider(conn: Conn, provider_id: str, at: datetime | None = None) -> None:
    """Mark a provider that left the source as removed (its models are removed separately)."""
    await conn.execute(
        "UPDATE providers SET removed_at = coalesce($2, now()), updated_at = coalesce($2, now()), content_hash = '' "
        "WHERE id = $1 AND removed_at IS NULL",
        provider_id,
        at,
    )


async def rename_provider_in_models(conn: Conn, provider_id: str, name: str) -> None:
    """Keep the copy of the provider's name in its models (for search) in step."""
    await conn.execute("UPDATE models SET provider_name = $2 WHERE provider_id = $1", provider_id, name)


async def upsert_models(conn: Conn, rows: Iterable[tuple[Any, ...]], at: datetime | None = None) -> int:
    """COPY rows (MODEL_COLUMNS order) into a staging table and upsert them; return the count.

    New models get first_seen_at now (or `at`); existing ones keep it and are listed again if removed.
    Each gets its link to a canonical model (migration 0012's rules) with its API object.
    """
    cols = ", ".join(MODEL_COLUMNS)
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS models_staging ON COMMIT DELETE ROWS "
        f"AS SELECT {cols} FROM models WITH NO DATA"
    )
    await conn.copy_records_to_table("models_staging", records=rows, columns=MODEL_COLUMNS)
    status = await conn.execute(
        f"""
        INSERT INTO models ({cols}, first_seen_at, updated_at, canonical_id, canonical_link, api_doc)
        SELECT {cols}, t.at, t.at, l.canonical_id, l.canonical_link,
               model_api_doc(provider_id, model_id, raw, t.at, t.at, NULL, l.canonical_id, l.canonical_link)
        FROM models_staging s CROSS JOIN (SELECT coalesce($1::timestamptz, now()) AS at) t
            CROSS JOIN LATERAL model_canonical_link(s.model_id, s.raw) l
        ON CONFLICT (provider_id, model_id) DO UPDATE SET {_UPDATE_SET},
            updated_at = EXCLUDED.updated_at, removed_at = NULL,
            canonical_id = EXCLUDED.canonical_id, canonical_link = EXCLUDED.canonical_link,
            api_doc = model_api_doc(
                models.provider_id, models.model_id, EXCLUDED.raw, models.first_seen_at, EXCLUDED.updated_at, NULL,
                EXCLUDED.canonical_id, EXCLUDED.canonical_link)
        """,
        at,
    )
    return int(status.rsplit(" ", 1)[1])


async def remove_models(conn: Conn, provider_id: str, model_ids: Sequence[str], at: datetime | None = None) -> None:
    """Soft-remove models that left the source: they stay, with removed_at set (now, or `at`)."""
    await conn.execute(
        "UPDATE models SET removed_at = t.at, updated_at = t.at, "
        "    api_doc = model_api_doc("
        "        provider_id, model_id, raw, first_seen_at, t.at, t.at, canonical_id, canonical_link) "
        "FROM (SELECT coalesce($3::timestamptz, now()) AS at) t "
        "WHERE provider_id = $1 AND model_id = ANY($2::text[]) AND removed_at IS NULL",
        provider_id,
        list(model_ids),
        at,
    )


async def bump_catalog_version(conn: Conn) -> int:
    """Take the next catalog version; the row lock orders concurrent commits."""
    return int(
        await conn.fetchval("UPDATE catalog_state SET version = version + 1, updated_at = now() RETURNING version")
    )


async def catalog_version(conn: Queryable) -> int:
    """The current catalog version."""
    return int(await conn.fetchval("SELECT version FROM catalog_state"))


CHANGE_COLUMNS = ("run_id", "provider_id", "model_id", "kind", "fields", "catalog_version")


async def insert_changes(conn: Conn, rows: Sequence[tuple[Any, ...]], at: datetime | None = None) -> None:
    """Append change-log rows (CHANGE_COLUMNS order), at now or at `at`."""
    if rows and at is not None:
        rows = [(*r, at) for r in rows]
    if rows:
        columns = CHANGE_COLUMNS if at is None else (*CHANGE_COLUMNS, "at")
        await conn.copy_records_to_table("model_changes", records=rows, columns=columns)


async def refresh_statistics_if_stale(conn: Queryable, changed_rows: int) -> bool:
    """ANALYZE the models table after a large change, so the planner's row estimates (which pick
    between walking an index in order and sorting) match the new catalog before autovacuum runs."""
    listed = await listed_model_count(conn)
    if changed_rows < max(500, listed // 10):
        return False
    await conn.execute("ANALYZE models, model_versions")  # model_versions: history (issue 13)
    return True
