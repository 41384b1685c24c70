"""SQL that reads the canonical models (migration 0012) for the API: the models.dev `/models.json`
document (now, or at an instant from their versions), the list of cards and one card with the
offerings linked to it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from shared.db import Queryable

#: The API's canonical model object: the card as received, its id as the upstream keys it, and
#: modelmeta's fields. content_hash changes whenever the card does (a mirror may compare it).
CARD_JSON = """(c.raw || jsonb_build_object(
    'id', c.id,
    'content_hash', c.content_hash,
    'first_seen_at', api_time(c.first_seen_at),
    'updated_at', api_time(c.updated_at),
    'removed_at', api_time(c.removed_at)))"""
#: What `q` searches (migration 0012's trigram index, canonical_models_search_idx).
_HAYSTACK = "lower(id || ' ' || name || ' ' || coalesce(family, ''))"
#: An offering of a card: the provider's model, short, with its price and limits.
_OFFERING = """jsonb_build_object(
    'id', m.provider_id || '/' || m.model_id, 'provider_id', m.provider_id, 'model_id', m.model_id,
    'name', m.name, 'canonical_link', m.canonical_link, 'cost', m.raw -> 'cost', 'limit', m.raw -> 'limit')"""


def search_words(text: str) -> list[str]:
    """The words of a search, lower-cased (runs of letters, digits, `.`, `-` and `/`); the whole
    text as one when it has none."""
    return re.findall(r"[\w./-]+", text.lower()) or [text.lower()]


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def models_document(conn: Queryable, at: datetime | None = None) -> str:
    """The listed cards as models.dev's `/models.json` (id -> card as received), as JSON text built
    by PostgreSQL; at an instant, the cards as they stood then (their versions)."""
    if at is None:
        sql = "SELECT coalesce(jsonb_object_agg(id, raw), '{}')::text FROM canonical_models WHERE removed_at IS NULL"
        return str(await conn.fetchval(sql))
    text = await conn.fetchval(
        "SELECT coalesce(jsonb_object_agg(id, raw), '{}')::text FROM canonical_model_versions "
        "WHERE valid_from <= $1 AND (valid_to IS NULL OR valid_to > $1) AND removed_at IS NULL",
        at,
    )
    return str(text)


async def list_cards(
    conn: Queryable,
    *,
    q: str | None,
    families: list[str],
    has_benchmarks: bool | None,
    include_removed: bool,
    after_id: str | None,
    limit: int,
) -> tuple[list[str], int, str | None]:
    """Canonical model objects as JSON text, by id: one page after `after_id`, the total matching
    and the next position. `q`: every word a substring of the id, name or family."""
    parts = ["($1 OR removed_at IS NULL)", "(cardinality($2::text[]) = 0 OR family = ANY($2::text[]))"]
    parts.append("($3::boolean IS NULL OR has_benchmarks = $3)")
    args: list[Any] = [include_removed, families, has_benchmarks]
    for word in search_words(q) if q else []:
        args.append(_like(word))
        parts.append(f"{_HAYSTACK} LIKE ${len(args)}::text")
    where = " AND ".join(parts)
    n = len(args)
    rows = await conn.fetch(
        f"SELECT {CARD_JSON}::text AS doc, c.id, (SELECT count(*) FROM canonical_models WHERE {where}) AS total "
        f"FROM canonical_models c WHERE {where} AND (${n + 1}::text IS NULL OR c.id > ${n + 1}) "
        f"ORDER BY c.id LIMIT ${n + 2}",
        *args,
        after_id,
        limit + 1,
    )
    count = f"SELECT count(*) FROM canonical_models WHERE {where}"
    total = rows[0]["total"] if rows else await conn.fetchval(count, *args)
    more = len(rows) > limit
    rows = rows[:limit]
    return [r["doc"] for r in rows], int(total), rows[-1]["id"] if more and rows else None


async def get_card(conn: Queryable, canonical_id: str) -> str | None:
    """One canonical model (listed or removed) as JSON text, with `offerings`: every listed
    provider model linked to it, by provider and model id."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"""
        SELECT ({CARD_JSON} || jsonb_build_object('offerings', coalesce((
            SELECT jsonb_agg({_OFFERING} ORDER BY m.provider_id, m.model_id)
            FROM models m WHERE m.canonical_id = c.id AND m.removed_at IS NULL), '[]')))::text
        FROM canonical_models c WHERE c.id = $1
        """,
        canonical_id,
    )
