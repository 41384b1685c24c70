"""SQL that reads the catalog for the API: model lists (filters, sorts, search), one model, bare
model ids, providers, capabilities, a model's history, the change feed, the models.dev document,
and readiness. Every list answers one page: (rows, total, position after the last row or None)."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import msgspec

from shared.db import Queryable
from shared.errors import BadRequest
from shared.listing import ModelQuery
from shared.schemas.api import Capability, ModelStatus

#: The API's model object as JSON text, kept up to date by the writers (migration 0002).
MODEL_JSON = "api_doc"
#: capability -> SQL condition on `models`.
CAPABILITY_SQL: dict[Capability, str] = {
    Capability.TOOL_CALL: "tool_call IS TRUE",
    Capability.REASONING: "reasoning IS TRUE",
    Capability.ATTACHMENT: "attachment IS TRUE",
    Capability.TEMPERATURE: "temperature IS TRUE",
    Capability.STRUCTURED_OUTPUT: "structured_output IS TRUE",
    Capability.OPEN_WEIGHTS: "open_weights IS TRUE",
    Capability.INTERLEAVED: "interleaved IS TRUE",
    Capability.VISION: "input_modalities @> '{image}'",
    Capability.AUDIO_INPUT: "input_modalities @> '{audio}'",
    Capability.PDF_INPUT: "input_modalities @> '{pdf}'",
    Capability.VIDEO_INPUT: "input_modalities @> '{video}'",
    Capability.IMAGE_OUTPUT: "output_modalities @> '{image}'",
    Capability.AUDIO_OUTPUT: "output_modalities @> '{audio}'",
}
#: sort key -> (SQL expression ascending, SQL expression descending, its type). Models without the
#: value come last either way, so NULL is mapped past the end in the direction of the sort.
SORT_SQL: dict[str, tuple[str, str, str]] = {
    "name": ("lower(name)", "lower(name)", "text"),
    "release_date": ("coalesce(release_date, '9999-99-99')", "coalesce(release_date, '')", "text"),
    "input_cost": ("coalesce(input_cost, 'Infinity'::float8)", "coalesce(input_cost, '-Infinity'::float8)", "float8"),
    "output_cost": (
        "coalesce(output_cost, 'Infinity'::float8)",
        "coalesce(output_cost, '-Infinity'::float8)",
        "float8",
    ),
    "context": ("coalesce(context_limit, 9223372036854775807)", "coalesce(context_limit, -1)", "bigint"),
}
_CAST = {"float8": float, "bigint": int, "text": str}
#: Models with a result of a benchmark ({name}: its placeholder), imported or on their linked card;
#: the outer columns unqualified, as every filter here (the search applies them to `models m`).
HAS_BENCHMARK_SQL = (
    "(canonical_id IN (SELECT cb.canonical_id FROM canonical_benchmarks cb "
    "WHERE lower(cb.benchmark) = lower({name}::text) AND cb.score IS NOT NULL) "
    "OR (provider_id, model_id) IN (SELECT b.provider_id, b.model_id FROM model_benchmarks b "
    "WHERE lower(b.benchmark) = lower({name}::text)))"
)
#: A model's best score of a benchmark ({name}), imported or on its card; NULL without one. Over
#: `models` unaliased (the table, or the catalog at an instant: its links are today's, and so are
#: the scores).
BENCHMARK_SCORE_SQL = (
    "(SELECT max(x.score) FROM (SELECT cb.score FROM canonical_benchmarks cb "
    "WHERE cb.canonical_id = models.canonical_id AND lower(cb.benchmark) = lower({name}::text) "
    "UNION ALL SELECT b.score FROM model_benchmarks b WHERE (b.provider_id, b.model_id) = "
    "(models.provider_id, models.model_id) AND lower(b.benchmark) = lower({name}::text)) x)"
)


def query_words(text: str) -> list[str]:
    """The words of a search, lower-cased: runs of letters, digits, `.` and `-`."""
    return re.findall(r"[\w.-]+", text.lower())


def escape_like(text: str) -> str:
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

    def copy(self) -> _Where:
        other = _Where()
        other.parts, other.args = list(self.parts), list(self.args)
        return other


def _filters(q: ModelQuery) -> _Where:
    w = _Where()
    if not q.include_removed:
        w.add("removed_at IS NULL")
    if q.providers:
        w.add(f"provider_id = ANY({w.arg(q.providers)}::text[])")
    for cap in q.capabilities:
        w.add(CAPABILITY_SQL[cap])
    for column, values in (("input_modalities", q.input_modalities), ("output_modalities", q.output_modalities)):
        if values:
            w.add(f"{column} @> {w.arg([str(v) for v in values])}::text[]")
    if q.families:
        w.add(f"family = ANY({w.arg(q.families)}::text[])")
    if q.types:
        w.add(f"{MODEL_TYPE_SQL} = ANY({w.arg(q.types)}::text[])")
    if q.statuses:
        named = [str(s) for s in q.statuses if s != ModelStatus.ACTIVE]
        cond = [f"status = ANY({w.arg(named)}::text[])"] if named else []
        if ModelStatus.ACTIVE in q.statuses:
            cond.append("status IS NULL")
        w.add("(" + " OR ".join(cond) + ")")
    for sql, value in (
        ("context_limit >=", q.min_context),
        ("output_limit >=", q.min_output),
        ("input_cost <=", q.max_input_cost),
        ("output_cost <=", q.max_output_cost),
        ("release_date >=", q.released_after),
        ("release_date <=", q.released_before),
    ):
        if value is not None:
            w.add(f"{sql} {w.arg(value)}")
    if q.has_benchmark is not None:
        w.add(HAS_BENCHMARK_SQL.format(name=w.arg(q.has_benchmark)))
    if q.q:
        _substrings(w, "search_text", q.q)
    return w


def _substrings(w: _Where, column: str, text: str) -> None:
    """Every word of a search a substring of `column` (trigram-indexed: the model's id, name, family
    and provider), so partial names match; with no word in the query, the whole query as one."""
    for word in query_words(text) or [text.lower()]:
        w.add(f"{column} LIKE {w.arg('%' + escape_like(word) + '%')}::text")


#: `.` and `-` read as letters by the trigram index of `model_search` (migration 0013).
BRIDGE = str.maketrans(".-", "zz")
BRIDGED = "translate(s.haystack, '.-', 'zz')"


def _bridged(w: _Where, text: str, *, plain: bool) -> None:
    """Every word of a search a substring of `model_search.haystack`: each word found through the
    trigram index of the bridged text (its trigrams span `.` and `-`), then tested as it is when
    bridging can have matched more (a word with `.`, `-` or `z`: only those letters are changed or
    stand for others, so the bridged text holds any other word exactly where the text does), or
    when `plain`: rows read in another index's order are tested without bridging first, which is
    cheaper, so that only those that match are bridged."""
    for word in query_words(text) or [text.lower()]:
        pattern = "%" + escape_like(word) + "%"
        if plain or pattern.translate(BRIDGE) != pattern or "z" in word:
            w.add(f"s.haystack LIKE {w.arg(pattern)}::text")
        w.add(f"{BRIDGED} LIKE {w.arg(pattern.translate(BRIDGE))}::text")


def _order(q: ModelQuery, w: _Where) -> tuple[str, str, str]:
    """(sort expression, its SQL type, direction) of a model list that is not a ranked search (its
    arguments added to `w`). A benchmark's score, like any value, puts the models without one last."""
    if q.sort == "benchmark" and q.sort_benchmark is not None:
        score = BENCHMARK_SCORE_SQL.format(name=w.arg(q.sort_benchmark))
        bound = "'-Infinity'" if q.descending else "'Infinity'"
        return f"coalesce({score}, {bound}::float8)", "float8", "DESC" if q.descending else "ASC"
    if q.sort:
        asc_key, desc_key, typ = SORT_SQL[q.sort]
        return (desc_key if q.descending else asc_key), typ, "DESC" if q.descending else "ASC"
    return "provider_id", "text", "ASC"


def _ranked(q: ModelQuery) -> bool:
    """A search without another order asked for: ranked best match first over `model_search`."""
    return bool(q.q) and not q.sort


#: The rank tiers, best first: (value, exact name or id, name or id starts with the query, whole
#: words). An exact match is also a prefix match, so exact-but-not-prefix tiers cannot occur.
_TIERS = [(4 * e + 2 * p + w, e, p, w) for e in (1, 0) for p in (1, 0) for w in (1, 0) if p or not e]


#: A ranked search whose total is known to be at most this many rows reads its matches once and
#: ranks them all (one trigram scan); a broader one reads its tiers in index order and stops at a page.
SCAN_AT_MOST = 2000


def _search_page(q: ModelQuery, known_total: int | None) -> tuple[str, list[Any], str]:
    """(page SQL, its arguments, count SQL taking the first of them) of a ranked search over the
    narrow `model_search` table.

    Best match first: the exact name or id, then a name or id that starts with the query, then
    whole-word (full-text) matches, then the rest; shorter names first among equals. The rank is
    (tier - name length / 1000). Two plans give the same rows: when the total is not known yet, or
    known to be small, every match is read once (one trigram scan), ranked and counted in the same
    pass; when it is known to be large, the page is read tier by tier, each in index order of (name
    length, id) with a LIMIT, so a broad search stops after one page instead of ranking every match.
    Either way only the page is joined back to `models` for its JSON.
    """
    text = q.q.lower() if q.q else ""
    w = _Where()
    if not q.include_removed:
        w.add("s.listed")
    others = _filters(msgspec.structs.replace(q, q=None, include_removed=True))
    if others.parts:  # the other filters are on `models`: each candidate is looked up by its key
        sql = re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + len(w.args)}", others.sql())
        w.args += others.args
        w.add(
            f"EXISTS (SELECT 1 FROM models m WHERE (m.provider_id, m.model_id) = (s.provider_id, s.model_id) AND {sql})"
        )
    k = _cursor_rank(q)
    past = k is not None and all(_shortest(tier, k) > 999 for tier, *_ in _TIERS)  # every tier before it
    scan = known_total is None or known_total <= SCAN_AT_MOST or past
    matching = w.copy()
    _bridged(matching, text, plain=not scan)
    count = f"SELECT count(*) FROM model_search s WHERE {matching.sql()}"
    w.args = matching.args  # the count's arguments come first
    exact = f"(s.name_l = {w.arg(text)}::text OR s.model_l = ${len(w.args)}::text)"
    prefix = f"(s.name_l LIKE {w.arg(escape_like(text) + '%')}::text OR s.model_l LIKE ${len(w.args)}::text)"
    lexemes = f"tsvector_to_array(to_tsvector('simple', {w.arg(text)}::text))"
    limit = w.arg(q.limit + 1)
    if scan:
        return _scan_sql(q, w, matching, exact, prefix, lexemes, limit, known_total), w.args, count
    word = f"(cardinality({lexemes}) > 0 AND s.lexemes @> {lexemes})"
    after = _rank_cursor(q, w)
    tiers = []
    for tier, e, p, wd in _TIERS:
        if (bound := after(tier)) is None:
            continue
        # A prefix (or exact) match holds every word of the query already; the others are tested.
        where = [*(w.parts if p else matching.parts), exact if e else f"NOT {exact}"]
        # In a prefix tier the few rows of a name length are tested for whole words one by one
        # (lexemes || '{}' keeps the planner off the whole-word index, which would read every match).
        words = word.replace("s.lexemes @>", "(s.lexemes || '{}'::text[]) @>") if p else word
        where += [prefix if p else f"NOT {prefix}", words if wd else f"NOT {words}", bound]
        tiers.append(_tier_sql(tier, " AND ".join(where), limit, probe=bool(p)))
    page = " UNION ALL ".join(tiers)
    sql = (
        f"SELECT m.{MODEL_JSON} AS doc, top.k, top.provider_id, top.model_id, ({{count}}) AS total "
        f"FROM (SELECT * FROM ({page}) u LIMIT {limit}) top (provider_id, model_id, k) "
        "JOIN models m USING (provider_id, model_id) "
        "ORDER BY top.k DESC, top.provider_id, top.model_id"
    )
    return sql, w.args, count


def _scan_sql(
    q: ModelQuery, w: _Where, matching: _Where, exact: str, prefix: str, lexemes: str, limit: str, known: int | None
) -> str:
    """The page of a ranked search read in one pass over its matches: each match's rank computed
    once (the query's own words split once, not per row), the page taken by a top-N sort, and the
    total counted from the same rows. One row even when the page is empty, to carry the total
    (its doc is NULL)."""
    rank = (
        f"((CASE WHEN {exact} THEN 4 ELSE 0 END) + (CASE WHEN {prefix} THEN 2 ELSE 0 END)"
        " + (CASE WHEN cardinality(words.l) > 0 AND s.lexemes @> words.l THEN 1 ELSE 0 END)"
        " - s.name_len / 1000.0)::float8"
    )
    after = "true"
    if q.cursor is not None:
        v, p, m = _cursor_args(q, w)
        after = f"(k < {v}::float8 OR (k = {v}::float8 AND (provider_id, model_id) > ({p}, {m})))"
    total = "SELECT count(*) AS total FROM found" if known is None else f"SELECT {int(known)} AS total"
    return (
        f"WITH found AS MATERIALIZED (SELECT s.provider_id, s.model_id, {rank} AS k "
        f"FROM (SELECT {lexemes} AS l) words, model_search s WHERE {matching.sql()}) "
        f"SELECT m.{MODEL_JSON} AS doc, top.k, top.provider_id, top.model_id, c.total "
        f"FROM ({total}) c LEFT JOIN ("
        f"(SELECT * FROM found WHERE {after} ORDER BY k DESC, provider_id, model_id LIMIT {limit}) top "
        "JOIN models m USING (provider_id, model_id)) ON true "
        "ORDER BY top.k DESC, top.provider_id, top.model_id"
    )


def _tier_sql(tier: int, where: str, limit: str, *, probe: bool) -> str:
    """One rank tier's first rows in (name length, id) order. A prefix tier probes its (name length,
    lower name or id) indexes one name length at a time, shortest first, and stops at a page: its
    matches can be many and their names long, where an index scan by length would wade through
    every shorter name. The other tiers let the planner choose between that scan (a broad match)
    and the trigram or whole-word index (a rare one)."""
    rank = f"({tier} - s.name_len / 1000.0)::float8"
    if not probe:
        return (
            f"(SELECT s.provider_id, s.model_id, {rank} FROM model_search s "
            f"WHERE {where} ORDER BY s.name_len, s.provider_id, s.model_id LIMIT {limit})"
        )
    lengths = "(SELECT min(name_len) FROM model_search), (SELECT max(name_len) FROM model_search)"
    return (
        f"(SELECT t.* FROM generate_series({lengths}) AS n (len) CROSS JOIN LATERAL ("
        f"SELECT s.provider_id, s.model_id, {rank} FROM model_search s WHERE s.name_len = n.len AND {where} "
        f"ORDER BY s.provider_id, s.model_id LIMIT {limit}) t LIMIT {limit})"
    )


def _cursor_rank(q: ModelQuery) -> float | None:
    """The rank of a ranked search's cursor (None without one)."""
    if q.cursor is None:
        return None
    try:
        k = float(q.cursor[0])
    except (TypeError, ValueError):
        k = math.nan
    if not math.isfinite(k):
        raise BadRequest("invalid cursor", [("cursor", "not a cursor of this list")])
    return k


def _shortest(tier: int, k: float) -> int:
    """The shortest name length of a tier's rows of rank <= k (rank <= k holds only for name_len
    >= (tier - k) * 1000): an index bound, one short for rounding; past 999 the whole tier comes
    before the cursor."""
    return max(0, math.floor((tier - k) * 1000) - 1)


def _cursor_args(q: ModelQuery, w: _Where) -> tuple[str, str, str]:
    """The placeholders of a ranked search's cursor (rank, provider id, model id), added to `w`."""
    assert q.cursor is not None
    _, pid, mid = q.cursor
    return w.arg(_cursor_rank(q)), w.arg(pid), w.arg(mid)


def _rank_cursor(q: ModelQuery, w: _Where) -> Any:
    """tier -> the SQL condition of a tier's rows after the cursor (true without one), or None
    when the whole tier comes before it."""
    k = _cursor_rank(q)
    if k is None:
        return lambda tier: "true"
    v, p, m = _cursor_args(q, w)

    def after(tier: int) -> str | None:
        shortest = _shortest(tier, k)
        if shortest > 999:
            return None
        rank = f"({tier} - s.name_len / 1000.0)::float8"
        return (
            f"s.name_len >= {shortest} AND ({rank} < {v}::float8 "
            f"OR ({rank} = {v}::float8 AND (s.provider_id, s.model_id) > ({p}, {m})))"
        )

    return after


def _list_page(q: ModelQuery) -> tuple[str, list[Any], str]:
    """(page SQL, its arguments, count SQL taking the first of them) of a model list in a sort
    order (or by id) over `models`."""
    w = _filters(q)
    page = w.copy()  # the page query takes every argument of the count query, then its own
    key, typ, direction = _order(q, page)
    if q.cursor is not None:
        value, pid, mid = q.cursor
        try:
            typed = _CAST[typ](value)
        except (TypeError, ValueError):
            raise BadRequest("invalid cursor", [("cursor", "not a cursor of this list")]) from None
        v, p, m = page.arg(typed), page.arg(pid), page.arg(mid)
        op = "<" if direction == "DESC" else ">"
        page.add(f"({key} {op} {v}::{typ} OR ({key} = {v}::{typ} AND (provider_id, model_id) > ({p}, {m})))")
    limit = page.arg(q.limit + 1)
    sql = (
        f"SELECT {MODEL_JSON} AS doc, {key} AS k, provider_id, model_id, ({{count}}) AS total "
        f"FROM models WHERE {page.sql()} ORDER BY {key} {direction}, provider_id, model_id LIMIT {limit}"
    )
    return sql, page.args, f"SELECT count(*) FROM models WHERE {w.sql()}"


async def list_models(
    conn: Queryable, q: ModelQuery, *, known_total: int | None = None
) -> tuple[list[str], int, list[Any] | None]:
    """(model JSON texts, total matching, position after the last row or None at the end).

    known_total: the total, when the caller already knows it for this catalog version (it does
    not depend on sort, cursor or limit), so that it is not counted again.
    """
    sql, args, count = _search_page(q, known_total) if _ranked(q) else _list_page(q)
    # One round trip: the count is an uncorrelated subquery, evaluated once.
    rows = await conn.fetch(sql.replace("{count}", count if known_total is None else str(int(known_total))), *args)
    if rows:
        total = rows[0]["total"]
        rows = [r for r in rows if r["doc"] is not None]  # a ranked scan's empty page: the total alone
    elif known_total is not None:
        total = known_total
    else:  # past the last page, or nothing matches: the count still has to be told
        total = await conn.fetchval(count, *args[: _max_arg(count)])
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    # The sort value travels as text: JSON has no Infinity, and repr() of a float round-trips exactly.
    position = [str(rows[-1]["k"]), rows[-1]["provider_id"], rows[-1]["model_id"]] if more and rows else None
    return [r["doc"] for r in rows], int(total), position


def _max_arg(sql: str) -> int:
    """The highest $n placeholder in a statement."""
    return max((int(n) for n in re.findall(r"\$(\d+)", sql)), default=0)


async def get_model(conn: Queryable, provider_id: str, model_id: str) -> str | None:
    """One model (listed or removed) as API JSON text."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT {MODEL_JSON} FROM models WHERE provider_id = $1 AND model_id = $2", provider_id, model_id
    )


async def providers_listing(conn: Queryable, model_id: str) -> list[str]:
    """The providers that list a model id (a bare id, without its provider), by provider id."""
    rows = await conn.fetch(
        "SELECT provider_id FROM models WHERE model_id = $1 AND removed_at IS NULL ORDER BY provider_id", model_id
    )
    return [r[0] for r in rows]


async def provider_exists(conn: Queryable, provider_id: str) -> bool:
    """Whether the catalog has (or had) this provider."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM providers WHERE id = $1)", provider_id))


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


_CHANGE_COLUMNS = "seq, at, run_id, provider_id, model_id, kind, fields"


async def model_history(
    conn: Queryable, provider_id: str, model_id: str, *, before_seq: int | None, limit: int
) -> tuple[list[Any], int, int | None]:
    """A model's changes, newest first: one page before `before_seq`, the total and the next position."""
    rows = await conn.fetch(
        f"SELECT {_CHANGE_COLUMNS}, (SELECT count(*) FROM model_changes WHERE provider_id = $1 AND model_id = $2) "
        "AS total FROM model_changes WHERE provider_id = $1 AND model_id = $2 AND ($3::bigint IS NULL OR seq < $3) "
        "ORDER BY seq DESC LIMIT $4",
        provider_id,
        model_id,
        before_seq,
        limit + 1,
    )
    total = (
        rows[0]["total"]
        if rows
        else await conn.fetchval(
            "SELECT count(*) FROM model_changes WHERE provider_id = $1 AND model_id = $2", provider_id, model_id
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return list(rows), int(total), rows[-1]["seq"] if more and rows else None


async def changes_since(
    conn: Queryable,
    *,
    since_seq: int,
    after_seq: int,
    since_time: datetime | None,
    providers: list[str],
    kinds: list[str],
    limit: int,
) -> tuple[list[Any], int, int | None]:
    """The change feed in seq order: the changes after `since_seq` (and at or after `since_time`)
    of these providers and kinds; one page after `after_seq`, their total and the next position."""
    where = (
        "seq > $1 AND ($2::timestamptz IS NULL OR at >= $2)"
        " AND (cardinality($3::text[]) = 0 OR provider_id = ANY($3))"
        " AND (cardinality($4::text[]) = 0 OR kind = ANY($4))"
    )
    args = (since_seq, since_time, providers, kinds)
    rows = await conn.fetch(
        f"SELECT {_CHANGE_COLUMNS}, (SELECT count(*) FROM model_changes WHERE {where}) AS total "
        f"FROM model_changes WHERE {where} AND seq > $5 ORDER BY seq LIMIT $6",
        *args,
        max(after_seq, since_seq),
        limit + 1,
    )
    total = (
        rows[0]["total"] if rows else await conn.fetchval(f"SELECT count(*) FROM model_changes WHERE {where}", *args)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return list(rows), int(total), rows[-1]["seq"] if more and rows else None


#: The API's provider object: the upstream provider object as received, plus modelmeta's fields.
#: content_hash changes whenever the provider or any of its models does (mirrors compare it).
PROVIDER_JSON = """(p.raw || jsonb_build_object(
    'model_count', (SELECT count(*) FROM models m WHERE m.provider_id = p.id AND m.removed_at IS NULL),
    'content_hash', p.content_hash,
    'first_seen_at', api_time(p.first_seen_at),
    'updated_at', api_time(p.updated_at),
    'removed_at', api_time(p.removed_at)))::text"""


async def list_providers(
    conn: Queryable, *, include_removed: bool, after_id: str | None, limit: int
) -> tuple[list[str], int, str | None]:
    """Provider objects as JSON text, by id: one page after `after_id`, the total and the next position."""
    where = "($1 OR p.removed_at IS NULL)"
    rows = await conn.fetch(
        f"SELECT {PROVIDER_JSON} AS doc, p.id, (SELECT count(*) FROM providers p WHERE {where}) AS total "
        f"FROM providers p WHERE {where} AND ($2::text IS NULL OR p.id > $2) ORDER BY p.id LIMIT $3",
        include_removed,
        after_id,
        limit + 1,
    )
    total = (
        rows[0]["total"]
        if rows
        else await conn.fetchval(f"SELECT count(*) FROM providers p WHERE {where}", include_removed)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return [r["doc"] for r in rows], int(total), rows[-1]["id"] if more and rows else None


async def get_provider(conn: Queryable, provider_id: str) -> str | None:
    """One provider object as JSON text."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT {PROVIDER_JSON} FROM providers p WHERE p.id = $1", provider_id
    )


async def capability_counts(conn: Queryable) -> dict[Capability, int]:
    """Each capability with its number of listed models, in declaration order."""
    cols = ", ".join(f"count(*) FILTER (WHERE {cond}) AS {name}" for name, cond in CAPABILITY_SQL.items())
    row = await conn.fetchrow(f"SELECT {cols} FROM models WHERE removed_at IS NULL")
    assert row is not None
    return {name: int(row[name]) for name in CAPABILITY_SQL}


#: A model's type as models.dev reads it (shared/exports/model_types.model_type): chat without one.
MODEL_TYPE_SQL = "coalesce(nullif(raw->>'type', ''), 'chat')"


async def catalog_document(
    conn: Queryable, *, providers: list[str] | None = None, types: list[str] | None = None
) -> str:
    """The listed catalog in models.dev's own shape, as JSON text built by PostgreSQL (jsonb's
    spacing): just these providers (None: all) and models of these types (None: all)."""
    text = await conn.fetchval(
        f"""
        SELECT coalesce(
            jsonb_object_agg(p.id, p.raw || jsonb_build_object('models', coalesce(m.models, '{{}}'))), '{{}}'
        )::text
        FROM providers p
        LEFT JOIN LATERAL (
            SELECT jsonb_object_agg(model_id, raw) AS models FROM models
            WHERE provider_id = p.id AND removed_at IS NULL
              AND ($2::text[] IS NULL OR {MODEL_TYPE_SQL} = ANY($2::text[]))
        ) m ON true
        WHERE p.removed_at IS NULL AND ($1::text[] IS NULL OR p.id = ANY($1::text[]))
        """,
        providers,
        types,
    )
    return str(text)


async def catalog_loaded(conn: Queryable, *, within: float) -> bool:
    """Whether any model is listed (readiness). asyncpg's own timeout: cancelling a query from
    outside can leave its connection mid-protocol."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM models WHERE removed_at IS NULL)", timeout=within))
