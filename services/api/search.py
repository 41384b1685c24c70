"""Ranked text search from memory (issue 14): each web process keeps a narrow structure over the
listed models of one catalog version -- their keys in rank order, the words of their search text, the
whole-word lexemes and the lower-cased names and ids -- so that a search finds, ranks and counts its
matches without reading them from PostgreSQL, which is then asked for the page's JSON only.

It answers exactly what `shared.db.api_reads.list_models` answers for a ranked search (`q=`, no
`sort=`) of the current catalog with no filter but `provider=`: the same matches (every word of the
query a substring of the search text), the same order (best tier first, then shorter names, then
the key), the same total and the same cursors. Anything else, and any request while the structure is
of another catalog version than the one this process knows, goes to PostgreSQL as before.

A word's candidates are the models holding each of its pairs of adjacent characters (a set per
pair, a few hundred pairs in all); the candidates of every word of a search are intersected, then
tested for the words themselves. Sets of rows are integers, a bit per row. The structure is rebuilt
in a thread once the catalog version has settled after a change.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import gc
import itertools
import operator
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import asyncpg
import numpy as np
import numpy.typing as npt
import structlog
from prometheus_client import Counter, Gauge

from shared.db import Queryable
from shared.db.api_reads import MODEL_JSON, query_words
from shared.listing import ModelQuery

log = structlog.get_logger(__name__)

_SEARCHES = Counter("modelmeta_search_index_queries_total", "Ranked searches by where they were answered", ["by"])
_BUILDS = Counter("modelmeta_search_index_builds_total", "Rebuilds of the in-memory search structure", ["outcome"])
_ROWS = Gauge("modelmeta_search_index_models", "Models in this process's in-memory search structure")
_SEARCH_BY_MEMORY = _SEARCHES.labels("memory")
_SEARCH_BY_DATABASE = _SEARCHES.labels("database")

#: Above every character: the end of a prefix range in sorted text.
_TOP = "\U0010ffff"
#: Words (and lexemes) whose matches are remembered per structure (100,000 models: 12.5 kB each).
WORDS_KEPT = 512
#: Candidates are tested for a search's words this many at a time (about half a millisecond at
#: 100,000 models), the event loop serving other requests between slices: a thread would not do
#: it, the test holds the GIL throughout.
VERIFY_SLICE = 4096
#: Quiet seconds after a catalog change before the structure is rebuilt (a refresh commits once
#: per provider: the rebuild waits for the burst to end).
SETTLE = 1.0
#: How often the maintainer looks at the catalog version this process knows.
POLL = 0.25

_ROWS_SQL = (
    "SELECT provider_id, model_id, haystack, lexemes, name_l, model_l, name_len FROM model_search "
    "WHERE listed ORDER BY name_len, provider_id, model_id"
)
_PAGE_SQL = (
    f"SELECT m.{MODEL_JSON} AS doc FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t (provider_id, model_id, n) "
    "JOIN models m USING (provider_id, model_id) WHERE m.removed_at IS NULL ORDER BY t.n"
)
#: A word PostgreSQL's simple parser makes one lexeme of, itself (ASCII letters, digits, letters
#: then digits, or a decimal number; digits then letters can read as a number, as `1e5x` -> `1e5`, `x`): a query made of
#: such words needs no round trip for its lexemes.
_PLAIN_WORD = re.compile(r"[a-z]+|[0-9]+|[a-z]+[0-9]+|[0-9]+\.[0-9]+")
_LEXEMES_SQL = "SELECT tsvector_to_array(to_tsvector('simple', $1::text))"


#: The rank tiers of shared.db.api_reads, best first: 4 for the exact name or id, 2 for a name or
#: id that starts with the query, 1 for every lexeme of the query among the model's.
_TIERS = (7, 6, 3, 2, 1, 0)

#: Row numbers as numpy keeps them (lists of rows made once, when a structure is built, are kept
#: as such arrays: a set made from one costs a sixth of a set made from a list).
Rows = npt.NDArray[np.int32]
_NO_ROWS: Rows = np.zeros(0, dtype=np.int32)
#: What a remembered set is kept under: a word, a lexeme, or (kind, text) for a prefix.
Key = TypeVar("Key", str, tuple[str, str])


def bits(rows: Rows, size: int) -> int:
    """A set of rows as an integer whose bit `row` is set for each."""
    if len(rows) < 64:  # a few bits cost less than a bitmap of every row
        mask = 0
        for row in rows.tolist():
            mask |= 1 << row
        return mask
    flags = np.zeros(size, dtype=np.uint8)
    flags[rows] = 1
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


def rows_in(mask: int) -> Rows:
    """Every row of a set, in order."""
    if mask <= 0:
        return _NO_ROWS
    raw = np.frombuffer(mask.to_bytes((mask.bit_length() + 7) // 8, "little"), dtype=np.uint8)
    return np.flatnonzero(np.unpackbits(raw, bitorder="little")).astype(np.int32)


def first_rows(mask: int, n: int, width: int = 2048) -> list[int]:
    """The lowest `n` rows of a set (in row order: shorter names first, then the key), read
    `width` bits at a time so that each step costs a little of the mask, not all of it."""
    out: list[int] = []
    base, window = 0, (1 << width) - 1
    while mask and len(out) < n:
        chunk = mask & window
        while chunk and len(out) < n:
            low = chunk & -chunk
            out.append(base + low.bit_length() - 1)
            chunk ^= low
        mask >>= width
        base += width
    return out


def _recall(sets: OrderedDict[Key, int], key: Key) -> int | None:
    """A remembered set, now the most recently used (None: not remembered)."""
    mask = sets.get(key)
    if mask is not None:
        sets.move_to_end(key)
    return mask


def _keep(sets: OrderedDict[Key, int], key: Key, mask: int) -> int:
    """Remember a set, the least recently used one out past WORDS_KEPT."""
    sets[key] = mask
    if len(sets) > WORDS_KEPT:
        sets.popitem(last=False)
    return mask


class Remembered(NamedTuple):
    """The keys of the sets a Snapshot remembers, oldest first."""

    chars: list[str]
    words: list[str]
    lexemes: list[str]
    prefixes: list[tuple[str, str]]


class Snapshot:
    """The listed models of one catalog version, rows numbered in (name length, provider id, model
    id) order as PostgreSQL sorts them: the order within a rank tier. Sets of rows are integers
    (a bit per row), so intersecting and counting them costs microseconds at 100,000 models.
    `warm`: what the structure it replaces remembered (the sets searched for last), made again while
    it is made, so that a catalog change does not make the searches people are typing cold again
    (in the build's thread: a word's test holds the GIL, at most milliseconds at a time)."""

    def __init__(self, version: int, records: Sequence[Any], warm: Remembered | None = None) -> None:
        self.version = version
        self.size = len(records)
        self.keys: list[tuple[str, str]] = [(r[0], r[1]) for r in records]
        self.haystacks: list[str] = [r[2] for r in records]
        self.name_len: list[int] = [r[6] for r in records]
        self.rows_of: dict[tuple[str, str], int] = {k: i for i, k in enumerate(self.keys)}
        providers: dict[str, list[int]] = {}
        postings: dict[str, list[int]] = {}  # lexeme -> rows
        names: list[tuple[str, int]] = []
        for i, r in enumerate(records):
            providers.setdefault(r[0], []).append(i)
            for lexeme in set(r[3]):
                postings.setdefault(lexeme, []).append(i)
            names.append((r[4], i))
            if r[5] != r[4]:
                names.append((r[5], i))
        names.sort()
        self.prefix_text = [n for n, _ in names]
        self.prefix_rows: Rows = np.fromiter((i for _, i in names), dtype=np.int32, count=len(names))
        self.providers: dict[str, Rows] = {p: np.array(rows, dtype=np.int32) for p, rows in providers.items()}
        self.postings: dict[str, Rows] = {lexeme: np.array(rows, dtype=np.int32) for lexeme, rows in postings.items()}
        self.bigrams = self._bigrams()
        self.chars: dict[str, int] = {}
        self.words: OrderedDict[str, int] = OrderedDict()
        self.lexemes: OrderedDict[str, int] = OrderedDict()
        self.prefixes: OrderedDict[tuple[str, str], int] = OrderedDict()
        if warm is not None:
            self._warm(warm)

    def remembered(self) -> Remembered:
        """The keys of the sets this structure remembers, oldest first (taken on the event loop,
        the only one to change them once the structure serves)."""
        return Remembered(list(self.chars), list(self.words), list(self.lexemes), list(self.prefixes))

    def _warm(self, warm: Remembered) -> None:
        for char in warm.chars:
            self.candidates(char)
        for word in warm.words:
            self.remember(word, bits(self.verify(rows_in(self.candidates(word)), [word]), self.size))
        for lexeme in warm.lexemes:
            self._whole_words([lexeme])
        for kind, text in warm.prefixes:
            self._prefixed(kind, text)

    def _bigrams(self) -> dict[str, int]:
        """Each pair of adjacent characters of the search texts -> the rows holding it."""
        postings: dict[str, list[int]] = {}
        for i, text in enumerate(self.haystacks):
            for pair in {text[j : j + 2] for j in range(len(text) - 1)}:
                postings.setdefault(pair, []).append(i)
        return {pair: bits(np.array(rows, dtype=np.int32), self.size) for pair, rows in postings.items()}

    def candidates(self, word: str) -> int:
        """The rows holding every pair of adjacent characters of `word`: exactly its matches when it
        has at most two characters (a search text has more than one, so each of its characters is
        in a pair), more when it is longer."""
        if len(word) == 1:
            mask = self.chars.get(word)
            if mask is None:
                mask = functools.reduce(operator.or_, (m for pair, m in self.bigrams.items() if word in pair), 0)
                if mask:  # at most one per character of the search texts
                    self.chars[word] = mask
            return mask
        mask = -1
        for j in range(len(word) - 1):
            mask &= self.bigrams.get(word[j : j + 2], 0)
        return mask

    def verify(self, rows: Rows, words: list[str]) -> Rows:
        """Those of `rows` whose search text holds every one of `words` (C loops over them)."""
        for word in words:
            texts = map(self.haystacks.__getitem__, rows.tolist())
            found = np.fromiter(map(str.__contains__, texts, itertools.repeat(word)), dtype=bool, count=len(rows))
            rows = rows[found]
        return rows

    def known(self, word: str) -> int | None:
        """The matches of a word searched for alone before."""
        return _recall(self.words, word)

    def remember(self, word: str, rows: int) -> None:
        _keep(self.words, word, rows)

    def groups(self, text: str, matches: int, lexemes: list[str], providers: Sequence[str]) -> list[int]:
        """The matches of a search in its rank tiers, best first."""
        if providers:
            matches &= bits(np.concatenate([self.providers.get(p, _NO_ROWS) for p in providers]), self.size)
        exact = matches & self._prefixed("=", text)
        prefix = matches & self._prefixed("^", text) & ~exact
        whole = matches & self._whole_words(lexemes)
        rest = matches & ~exact & ~prefix
        return [exact & whole, exact & ~whole, prefix & whole, prefix & ~whole, rest & whole, rest & ~whole]

    def _prefixed(self, kind: str, text: str) -> int:
        """The rows whose lower-cased name or id is `text` (kind "=") or starts with it ("^"),
        remembered."""
        mask = _recall(self.prefixes, (kind, text))
        if mask is None:
            lo = bisect.bisect_left(self.prefix_text, text)
            if kind == "=":
                end = bisect.bisect_right(self.prefix_text, text, lo)
            else:
                end = bisect.bisect_left(self.prefix_text, text + _TOP, lo)
                while end < len(self.prefix_text) and self.prefix_text[end].startswith(text):  # past U+10FFFF
                    end += 1
            mask = _keep(self.prefixes, (kind, text), bits(self.prefix_rows[lo:end], self.size))
        return mask

    def _whole_words(self, lexemes: list[str]) -> int:
        """The rows holding every lexeme of the query (none when the query has none)."""
        rows = -1 if lexemes else 0
        for lexeme in set(lexemes):
            mask = _recall(self.lexemes, lexeme)
            if mask is None:
                mask = _keep(self.lexemes, lexeme, bits(self.postings.get(lexeme, _NO_ROWS), self.size))
            rows &= mask
        return rows

    def rank_value(self, row: int, tier: int) -> float:
        """PostgreSQL's (tier - name_len / 1000.0)::float8: the correctly rounded quotient."""
        return (tier * 1000 - self.name_len[row]) / 1000

    def page(self, groups: list[int], after: tuple[int, int] | None, n: int) -> list[tuple[int, int]]:
        """Up to `n` (row, tier) in rank order, after `after` (the group and row of a cursor)."""
        out: list[tuple[int, int]] = []
        for g, (tier, mask) in enumerate(zip(_TIERS, groups, strict=True)):
            if after is not None and g < after[0]:
                continue
            if after is not None and g == after[0]:
                mask &= ~((1 << (after[1] + 1)) - 1)
            out += [(row, tier) for row in first_rows(mask, n - len(out))]
            if len(out) >= n:
                break
        return out


class SearchIndex:
    """This process's in-memory search: the current Snapshot (None until built), kept at the
    catalog version the response cache knows of."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.snapshot: Snapshot | None = None
        self.build_seconds = 0.0  # what the last build took
        self._lexemes: OrderedDict[str, list[str]] = OrderedDict()

    def serves(self, q: ModelQuery, version: int) -> Snapshot | None:
        """The snapshot that answers this query at this catalog version, or None (PostgreSQL does)."""
        if q.q is None or q.sort:
            return None  # not a ranked search
        snap = self.snapshot
        usable = snap is not None and snap.version == version and bool(query_words(q.q)) and q == _only_providers(q)
        (_SEARCH_BY_MEMORY if usable else _SEARCH_BY_DATABASE).inc()
        return snap if usable else None

    async def page(
        self, conn: Queryable, snap: Snapshot, q: ModelQuery
    ) -> tuple[list[str], int, list[Any] | None] | None:
        """(model JSON texts, total, position after the last row or None) as list_models answers;
        None when PostgreSQL must answer (a cursor at a model no longer listed, or a page whose
        models changed since the snapshot)."""
        assert q.q is not None
        text = q.q.lower()
        matches = await _matches(snap, query_words(text))
        groups = snap.groups(text, matches, await self._query_lexemes(conn, text), q.providers)
        after = _after_cursor(snap, groups, q.cursor) if q.cursor is not None else None
        if q.cursor is not None and after is None:
            return None
        rows = snap.page(groups, after, q.limit + 1)
        keys = [snap.keys[r] for r, _ in rows[: q.limit]]
        docs = await conn.fetch(_PAGE_SQL, [k[0] for k in keys], [k[1] for k in keys]) if keys else []
        if len(docs) != len(keys):
            return None
        position = None
        if len(rows) > q.limit:
            row, tier = rows[q.limit - 1]
            position = [str(snap.rank_value(row, tier)), *snap.keys[row]]
        return [d["doc"] for d in docs], sum(g.bit_count() for g in groups), position

    async def _query_lexemes(self, conn: Queryable, text: str) -> list[str]:
        """The query's whole-word lexemes as PostgreSQL's simple parser makes them (remembered)."""
        lexemes = self._lexemes.get(text)
        if lexemes is None:
            words = text.split(" ")
            plain = text.isascii() and all(_PLAIN_WORD.fullmatch(word) for word in words if word)
            words = [word for word in words if word]
            lexemes = words if plain else list(await conn.fetchval(_LEXEMES_SQL, text) or [])
            self._lexemes[text] = lexemes
            if len(self._lexemes) > 4 * WORDS_KEPT:
                self._lexemes.popitem(last=False)
        return lexemes

    async def build(self, pool: asyncpg.Pool) -> Snapshot:
        """Read the listed models and the catalog version they are of (one snapshot of the
        database), and make the structure in a thread."""
        started = time.monotonic()
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            version = int(await conn.fetchval("SELECT version FROM catalog_state"))
            records = await conn.fetch(_ROWS_SQL)
        warm = self.snapshot.remembered() if self.snapshot is not None else None
        snap = await asyncio.to_thread(Snapshot, version, records, warm)
        self.snapshot, self.build_seconds = snap, time.monotonic() - started
        # Long-lived objects out of the cyclic collector's way: at 100,000 models its full pass over
        # them stops the process for about 120 ms, frozen 0 ms (they are freed by reference counting).
        gc.collect()
        gc.freeze()
        _ROWS.set(len(snap.keys))
        _BUILDS.labels("built").inc()
        log.info(
            "search_index_built",
            catalog_version=version,
            models=len(snap.keys),
            warmed=len(snap.words) + len(snap.lexemes) + len(snap.prefixes),
            ms=_ms(started),
        )
        return snap

    async def maintain(self, pool: asyncpg.Pool, version: Callable[[], int], stop: asyncio.Event) -> None:
        """Keep the snapshot at the catalog version this process knows: rebuild once the version has
        stayed the same for SETTLE seconds after a change, or for as long as the last build took
        when that is longer (at 100,000 models a build costs seconds of a core: a refresh that commits
        slowly is not followed by a build after every commit). A failed build is logged and tried
        again."""
        seen, since, backoff = version(), time.monotonic(), 0.0
        while not stop.is_set() and self.enabled:
            now = version()
            if now != seen:
                seen, since = now, time.monotonic()
            snap = self.snapshot
            # Another version than the process knows (older, or newer after a restore) once settled;
            # one the process has not caught up with yet is waited for by the settling.
            stale = snap is None or snap.version != now
            if stale and time.monotonic() - since >= (backoff if snap is None else max(SETTLE, self.build_seconds)):
                try:
                    await self.build(pool)
                    backoff = 0.0
                except Exception as e:  # the process goes on; searches go to PostgreSQL meanwhile
                    _BUILDS.labels("failed").inc()
                    log.warning("search_index_build_failed", error=f"{type(e).__name__}: {e}", catalog_version=now)
                    backoff = min(60.0, max(1.0, 2 * backoff))
                since = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL)


async def _matches(snap: Snapshot, words: list[str]) -> int:
    """The models whose search text holds every word: the rows holding each word's pairs of
    characters, then those of them holding the words themselves (a word of one or two characters
    needs no test). A word searched for alone is remembered."""
    matches, tested = -1, []
    for word in words:
        known = snap.known(word)
        matches &= known if known is not None else snap.candidates(word)
        if known is None and len(word) > 2:
            tested.append(word)
    if tested and matches:
        rows, kept = rows_in(matches), []
        for start in range(0, len(rows), VERIFY_SLICE):
            if start:
                await asyncio.sleep(0)  # a broad word's candidates do not hold up other requests
            kept.append(snap.verify(rows[start : start + VERIFY_SLICE], tested))
        matches = bits(np.concatenate(kept), snap.size)
    if len(words) == 1 and tested:
        snap.remember(words[0], matches)
    return matches


def _only_providers(q: ModelQuery) -> ModelQuery:
    """The query with every filter but `provider=`, `q=` and the page at its default: equal to `q`
    exactly when the search structure can answer it."""
    return ModelQuery(providers=q.providers, q=q.q, limit=q.limit, cursor=q.cursor)


def _after_cursor(snap: Snapshot, groups: list[int], cursor: list[Any]) -> tuple[int, int] | None:
    """(group, row) of the cursor's model, when it is among the matches with the rank the cursor
    says (None when not: PostgreSQL compares the position itself)."""
    row = snap.rows_of.get((cursor[1], cursor[2]))
    if row is None:
        return None
    for g, (tier, mask) in enumerate(zip(_TIERS, groups, strict=True)):
        if mask >> row & 1:
            return (g, row) if str(snap.rank_value(row, tier)) == str(cursor[0]) else None
    return None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
