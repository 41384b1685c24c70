"""The ranked search over the narrow `model_search` table against the plain rank over `models`:
the same rows in the same order, page by page, and the narrow table in step after every refresh."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api import keys, search
from services.api.main import create_app
from services.api.search import SearchIndex
from shared.config import Settings
from shared.db import api_reads
from shared.db.catalog_writes import catalog_version
from shared.embedded import document
from shared.listing import ModelQuery, decode_cursor
from tests.support import CATALOG_NEW, CATALOG_OLD, SAMPLE, fake_upstream, pipeline, refresh_inline, wait_until

#: The rank as the API describes it, computed row by row over the wide table: exact name or id,
#: then prefix, then whole words, then the rest; shorter names first; then by id.
REFERENCE = """
SELECT provider_id || '/' || model_id FROM models
WHERE removed_at IS NULL AND search_text LIKE ALL ($2::text[])
ORDER BY (CASE WHEN lower(name) = $1 OR lower(model_id) = $1 THEN 4 ELSE 0 END)
       + (CASE WHEN lower(name) LIKE $3 OR lower(model_id) LIKE $3 THEN 2 ELSE 0 END)
       + (CASE WHEN search @@ plainto_tsquery('simple', $1) THEN 1 ELSE 0 END) DESC,
         length(name), provider_id, model_id
"""
QUERIES = ["gpt", "claude", "gpt-4o", "GPT 4.1 mini", "llama 3", "o3", "flash", "sonn", "qwen3", "zzz", "4", "-"]


async def ranked(pool: Any, q: str, limit: int, known: int | None = None) -> tuple[list[str], int]:
    """Every row of a search, walked page by page through the cursor (`known`: the total the
    caller already knows, which picks the plan); then the total past the last page."""
    out: list[str] = []
    query = ModelQuery(q=q, limit=limit)
    while True:
        docs, total, position = await api_reads.list_models(pool, query, known_total=known)
        out += [msgspec.json.decode(d)["id"] for d in docs]
        if position is None:
            break
        query = msgspec.structs.replace(query, cursor=position)
    # A cursor past every row (a rank below any): an empty page that still tells the total.
    docs, beyond, position = await api_reads.list_models(
        pool, msgspec.structs.replace(query, cursor=["-1000", "~", "~"]), known_total=known
    )
    assert docs == [] and position is None and beyond == total
    return out, total


async def reference(pool: Any, q: str) -> list[str]:
    text = q.lower()
    words = [f"%{w}%" for w in api_reads.query_words(text)] or [f"%{text}%"]
    return [r[0] for r in await pool.fetch(REFERENCE, text, words, text + "%")]


async def test_narrow_search_ranks_like_the_wide_table(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = document(CATALOG_OLD), document(CATALOG_NEW)
    async with fake_upstream(old) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
        for body in (old, new):  # after a first load, then after a refresh that adds, updates and removes
            up.body = body
            await refresh_inline(ctx)
            stale = await ctx.pool.fetchval(
                "SELECT count(*) FROM models m FULL JOIN model_search s USING (provider_id, model_id) "
                "WHERE s.listed IS DISTINCT FROM (m.removed_at IS NULL) OR s.haystack IS DISTINCT FROM m.search_text "
                "OR s.lexemes IS DISTINCT FROM tsvector_to_array(m.search) OR s.name_len <> length(m.name)"
            )
            assert stale == 0
            for q in QUERIES:
                want = await reference(ctx.pool, q)
                got, total = await ranked(ctx.pool, q, limit=10)  # one scan of every match, counted
                assert got == want, q
                assert total == len(want), q
                got, total = await ranked(ctx.pool, q, limit=25, known=len(want))  # known: one scan, or
                assert (got, total) == (want, len(want)), q
                monkeypatch.setattr(api_reads, "SCAN_AT_MOST", -1)  # ... tier by tier in index order
                got, total = await ranked(ctx.pool, q, limit=7, known=len(want))
                monkeypatch.undo()
                assert (got, total) == (want, len(want)), q
        assert len(await reference(ctx.pool, "gpt")) > 50
        removed = await ctx.pool.fetchval("SELECT count(*) FROM model_search WHERE NOT listed")
        assert removed > 0


async def from_memory(index: SearchIndex, pool: Any, q: str, limit: int, providers: list[str]) -> tuple[list[str], int]:
    """Every row of a search answered by the in-memory structure, page by page through its cursors
    (the first ones also given to PostgreSQL's plan, which must answer the same next page)."""
    snap = index.snapshot
    assert snap is not None
    out: list[str] = []
    query = ModelQuery(q=q, limit=limit, providers=providers)
    while True:
        assert index.serves(query, snap.version) is snap
        answer = await index.page(pool, snap, query)
        assert answer is not None, (q, query.cursor)
        docs, total, position = answer
        if query.cursor is not None and len(out) <= 3 * limit:  # the first pages' cursors
            assert (docs, total) == (await api_reads.list_models(pool, query))[:2], (q, query.cursor)
        out += [msgspec.json.decode(d)["id"] for d in docs]
        if position is None:
            return out, total
        query = msgspec.structs.replace(query, cursor=position)


@pytest.mark.parametrize("large", [False, True])
async def test_search_from_memory_ranks_like_the_database(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    """The in-memory search answers every query as PostgreSQL does (rows, order, totals, cursors),
    with and without `provider=`, after a first load and after a refresh that changed the catalog;
    and it answers nothing it cannot (filters, sorts, removed models, another catalog version).
    `large`: candidates tested a few at a time with other requests served between, as a broad
    word's are at 100,000 models."""
    if large:
        monkeypatch.setattr(search, "VERIFY_SLICE", 3)
    old, new = document(CATALOG_OLD), document(CATALOG_NEW)
    index = SearchIndex()
    async with fake_upstream(old) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        for body in (old, new):
            up.body = body
            await refresh_inline(ctx)
            before = index.snapshot.remembered() if index.snapshot is not None else None
            snap = await index.build(ctx.pool)
            assert snap.version == await ctx.pool.fetchval("SELECT version FROM catalog_state")
            if before is not None:  # made again for the new catalog (its rows are numbered anew)
                assert before.words and before.lexemes and before.prefixes
                assert snap.remembered() == before
            providers = [p for (p,) in await ctx.pool.fetch("SELECT id FROM providers ORDER BY id LIMIT 3")]
            for q in [
                *QUERIES,
                "GPT 4.1 mini ",
                "claude-3",
                "o",
                "sonnet 4.5",
                "4.5 sonnet",
                "mini gpt-4",
                "gpt\U0010ffff",
            ]:
                want = await reference(ctx.pool, q)
                assert await from_memory(index, ctx.pool, q, 10, []) == (want, len(want)), q
                assert await from_memory(index, ctx.pool, q, 500, []) == (want, len(want)), q
                some = [
                    r["id"]
                    for r in [
                        msgspec.json.decode(d)
                        for d in (
                            await api_reads.list_models(ctx.pool, ModelQuery(q=q, limit=500, providers=providers[1:]))
                        )[0]
                    ]
                ]
                assert await from_memory(index, ctx.pool, q, 3, providers[1:]) == (some, len(some)), q
        assert len(await reference(ctx.pool, "gpt")) > 50
        # The lexemes of plain queries are made without PostgreSQL: as its parser makes them.
        plain = ["gpt 4o mini", "o3", "claude3 opus", "1e5", "007 bond", "llama 3 70b", "qwen", "a b c", "a  b"]
        plain += ["6.9 flash 483", "01.50"]
        for text in [*plain, "1e5x", "gpt-4.1", "sonnet_4", "gpt\u00a0mini", "a\tb", "1.2.3"]:
            want_lexemes = set(await ctx.pool.fetchval("SELECT tsvector_to_array(to_tsvector('simple', $1))", text))
            assert set(await index._query_lexemes(ctx.pool, text)) == want_lexemes, text
        for other in (
            ModelQuery(q="gpt", sort="name"),
            ModelQuery(q="gpt", include_removed=True),
            ModelQuery(q="gpt", families=["gpt"]),
            ModelQuery(q="@@"),
            ModelQuery(),
        ):
            assert index.serves(other, snap.version) is None, other
        assert index.serves(ModelQuery(q="gpt"), snap.version + 1) is None
        # A cursor at a model the structure does not list: PostgreSQL answers it.
        stale = ModelQuery(q="gpt", cursor=["5.99", "nobody", "nothing"])
        assert await index.page(ctx.pool, snap, stale) is None


async def test_each_web_process_keeps_its_search_at_the_current_catalog(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app builds its search structure at start, answers ranked searches from it, goes to
    PostgreSQL while the catalog has changed and the structure is older, and builds it again once
    the change has settled; answers are the same either way."""
    monkeypatch.setattr(search, "SETTLE", 3.0)  # long enough to see the structure behind the catalog
    doc = json.loads(SAMPLE.read_bytes())
    async with fake_upstream(json.dumps(doc).encode()) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
        async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as client:
            app = client.server.app
            index, cache = app[keys.SEARCH], app[keys.CACHE]
            await wait_until(lambda: index.snapshot and index.snapshot.version == cache.version, 10, what="built")
            memory = search._SEARCH_BY_MEMORY._value.get()
            first = await (await client.get("/api/v1/models?q=acme&limit=2")).json()
            assert search._SEARCH_BY_MEMORY._value.get() == memory + 1
            assert first["total"] > 2 and first["next_cursor"]
            doc["acme"]["models"]["acme-large-3"]["name"] = "Zebra Large"
            up.body = json.dumps(doc).encode()
            assert (await refresh_inline(ctx))["status"] == "succeeded"
            version = await catalog_version(app[keys.POOL])
            await wait_until(lambda: cache.version == version, 10, what="the change heard")
            assert index.snapshot is not None and index.snapshot.version < version  # not rebuilt yet
            database = search._SEARCH_BY_DATABASE._value.get()
            found = await (await client.get("/api/v1/models?q=zebra")).json()  # PostgreSQL answers
            assert search._SEARCH_BY_DATABASE._value.get() == database + 1
            assert [m["id"] for m in found["data"]] == ["acme/acme-large-3"] and found["total"] == 1
            await wait_until(lambda: index.snapshot and index.snapshot.version == version, 10, what="built again")
            memory = search._SEARCH_BY_MEMORY._value.get()
            found = await (await client.get("/api/v1/models?q=zebra&limit=5")).json()  # not a cached URL
            assert [m["id"] for m in found["data"]] == ["acme/acme-large-3"] and found["total"] == 1
            assert search._SEARCH_BY_MEMORY._value.get() == memory + 1
            page = await (await client.get(f"/api/v1/models?q=acme&limit=2&cursor={first['next_cursor']}")).json()
            # A cursor of the catalog before: the rows after its position in today's rank, as PostgreSQL says.
            cursor = decode_cursor(first["next_cursor"], "rank", 3)
            want, total, _ = await api_reads.list_models(app[keys.POOL], ModelQuery(q="acme", limit=2, cursor=cursor))
            assert [m["id"] for m in page["data"]] == [json.loads(d)["id"] for d in want]
            assert page["total"] == total
