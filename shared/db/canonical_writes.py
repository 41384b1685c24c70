"""SQL that writes the canonical models (migration 0012): the cards, their versions and benchmark
rows, the hash of the document last synced, and the offerings' links to the cards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.canonical import CanonicalRecord
from shared.db import Conn, Queryable

#: The advisory lock between syncs that write offerings (shared: they run side by side) and the
#: sync of the models document (exclusive): an offering's link is computed against a committed
#: canonical set, and the set's sync relinks against committed offerings.
_LINKS_LOCK = "SELECT pg_advisory_xact_lock{mode}(hashtext('canonical-links'))"


async def hold_links_shared(conn: Conn) -> None:
    """Taken by a provider's sync before it writes a model, until its transaction ends."""
    await conn.execute(_LINKS_LOCK.format(mode="_shared"))


async def hold_links_exclusive(conn: Conn) -> None:
    """Taken by the models document's sync before it writes a card, until its transaction ends."""
    await conn.execute(_LINKS_LOCK.format(mode=""))


async def stored_source(conn: Queryable) -> tuple[str, str | None, str | None]:
    """(hash, source URL, ETag) of the models document last synced (hash '' when none is stored)."""
    row = await conn.fetchrow("SELECT content_hash, source_url, etag FROM canonical_state")
    assert row is not None
    return row["content_hash"], row["source_url"], row["etag"]


async def set_stored_source(conn: Conn, content_hash: str, source_url: str | None, etag: str | None) -> None:
    """Record the models document just synced (hash '': none)."""
    await conn.execute(
        "UPDATE canonical_state SET content_hash = $1, source_url = $2, etag = $3", content_hash, source_url, etag
    )


async def record_run_models_source(conn: Conn, run_id: int, url: str, etag: str | None) -> None:
    """Where the models document a run syncs came from (stored with the cards when they commit)."""
    await conn.execute("UPDATE refresh_runs SET models_url = $2, models_etag = $3 WHERE id = $1", run_id, url, etag)


async def run_models_source(conn: Queryable, run_id: int) -> tuple[str | None, str | None]:
    """(URL, ETag) of the models document a run loaded."""
    row = await conn.fetchrow("SELECT models_url, models_etag FROM refresh_runs WHERE id = $1", run_id)
    return (row["models_url"], row["models_etag"]) if row is not None else (None, None)


async def card_states(conn: Conn) -> dict[str, tuple[str, bool, str | None]]:
    """id -> (content_hash, listed, None) of every card ever stored (diff_states' shape)."""
    rows = await conn.fetch("SELECT id, content_hash, removed_at IS NULL AS listed FROM canonical_models")
    return {r["id"]: (r["content_hash"], r["listed"], None) for r in rows}


async def card_raws(conn: Conn, ids: Sequence[str]) -> dict[str, Any]:
    """The stored objects of some cards."""
    rows = await conn.fetch("SELECT id, raw FROM canonical_models WHERE id = ANY($1::text[])", list(ids))
    return {r["id"]: r["raw"] for r in rows}


async def upsert_cards(conn: Conn, cards: Sequence[CanonicalRecord], at: datetime) -> None:
    """Insert or update cards (listed again when they had been removed), and rebuild their
    benchmark rows from their objects."""
    await conn.executemany(
        """
        INSERT INTO canonical_models (id, raw, content_hash, first_seen_at, updated_at)
        VALUES ($1, $2, $3, $4, $4)
        ON CONFLICT (id) DO UPDATE SET raw = EXCLUDED.raw, content_hash = EXCLUDED.content_hash,
            updated_at = EXCLUDED.updated_at, removed_at = NULL
        """,
        [(c.id, c.raw, c.content_hash, at) for c in cards],
    )
    ids = [c.id for c in cards]
    await conn.execute("DELETE FROM canonical_benchmarks WHERE canonical_id = ANY($1::text[])", ids)
    await conn.execute(
        """
        INSERT INTO canonical_benchmarks (canonical_id, ordinal, benchmark, score, metric, source, measured_at, result)
        SELECT c.id, e.ordinal, e.result ->> 'name', jsonb_as_float8(e.result -> 'score'),
               coalesce(jsonb_as_text(e.result -> 'metric'), ''), coalesce(jsonb_as_text(e.result -> 'source'), ''),
               jsonb_as_date(e.result -> 'date'), e.result
        FROM canonical_models c
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(c.raw -> 'benchmarks') = 'array' THEN c.raw -> 'benchmarks' ELSE '[]' END
        ) WITH ORDINALITY AS e (result, ordinal)
        WHERE c.id = ANY($1::text[]) AND jsonb_typeof(e.result -> 'name') = 'string'
        """,
        ids,
    )


async def remove_cards(conn: Conn, ids: Sequence[str], at: datetime) -> None:
    """Soft-remove cards that left the document; their benchmark results leave the offerings."""
    await conn.execute(
        "UPDATE canonical_models SET removed_at = $2, updated_at = $2 "
        "WHERE id = ANY($1::text[]) AND removed_at IS NULL",
        list(ids),
        at,
    )
    await conn.execute("DELETE FROM canonical_benchmarks WHERE canonical_id = ANY($1::text[])", list(ids))


_CLOSE_CARDS = """
WITH closed AS (
    UPDATE canonical_model_versions SET valid_to = $2
    WHERE id = ANY($1::text[]) AND valid_to IS NULL
    RETURNING id, first_seen_at, raw
), gone AS (
    INSERT INTO canonical_model_versions (id, valid_from, removed_at, first_seen_at, raw)
    SELECT id, $2, $2, first_seen_at, raw FROM closed WHERE id = ANY($3::text[])
)
SELECT id, first_seen_at FROM closed
"""


async def record_card_versions(
    conn: Conn, at: datetime, cards: Mapping[str, CanonicalRecord], listed: Sequence[str], removed: Sequence[str]
) -> None:
    """Close the current versions of the cards added, updated (`listed`) or removed, and open their
    next ones at `at` (history.record_model_versions' rule)."""
    if not listed and not removed:
        return
    closed = await conn.fetch(_CLOSE_CARDS, [*listed, *removed], at, list(removed))
    first_seen = {r["id"]: r["first_seen_at"] for r in closed}
    if listed:
        await conn.copy_records_to_table(
            "canonical_model_versions",
            records=[(cid, at, first_seen.get(cid, at), cards[cid].raw) for cid in listed],
            columns=("id", "valid_from", "first_seen_at", "raw"),
        )


async def relink_models(conn: Conn, segments: Sequence[str]) -> list[str]:
    """Recompute the links of the offerings whose id ends in one of these segments (those of the
    cards that came or went: the only inferred links that can change), with their API objects;
    return the ids (provider/model) of those whose link changed."""
    if not segments:
        return []
    rows = await conn.fetch(
        """
        WITH now_linked AS (
            SELECT m.provider_id, m.model_id, l.canonical_id, l.canonical_link
            FROM models m CROSS JOIN LATERAL model_canonical_link(m.model_id, m.raw) l
            WHERE lower(regexp_replace(m.model_id, '^.*/', '')) = ANY($1::text[])
        )
        UPDATE models m SET canonical_id = n.canonical_id, canonical_link = n.canonical_link,
            api_doc = model_api_doc(m.provider_id, m.model_id, m.raw, m.first_seen_at, m.updated_at, m.removed_at,
                                    n.canonical_id, n.canonical_link)
        FROM now_linked n
        WHERE (m.provider_id, m.model_id) = (n.provider_id, n.model_id)
          AND (m.canonical_id, m.canonical_link) IS DISTINCT FROM (n.canonical_id, n.canonical_link)
        RETURNING m.provider_id || '/' || m.model_id AS id
        """,
        sorted(set(segments)),
    )
    return [r["id"] for r in rows]
