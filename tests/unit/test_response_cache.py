"""The response cache: content negotiation, representations built once, and the byte bound."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from datetime import UTC, datetime

import brotli
import pytest
import zstandard

from services.api import compression
from services.api.cache import ALL, KEY_OVERHEAD, PastInstants, ResponseCache, TotalsMemo
from services.api.compression import IDENTITY, negotiate


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        (None, IDENTITY),
        ("", IDENTITY),
        ("gzip", "gzip"),
        ("gzip, deflate", "gzip"),
        ("gzip, deflate, br", "br"),
        ("gzip, deflate, br, zstd", "br"),
        ("zstd", "zstd"),
        ("br;q=0.5, gzip;q=0.8", "gzip"),
        ("gzip;q=0, br;q=0", IDENTITY),
        ("br;q=0, *", "zstd"),
        ("*;q=0", IDENTITY),
        ("*", "br"),
        ("GZIP", "gzip"),
        ("deflate, compress", IDENTITY),
        ("identity", IDENTITY),
        ("gzip;q=2", IDENTITY),  # a q-value out of range: the header cannot be read
        ("gzip;q=abc", IDENTITY),
        ("gzip;level=9", IDENTITY),
        ("gz ip", IDENTITY),
        ("\x00gzip", IDENTITY),
        ("gzip;q=0.001, br;q=0.0001", IDENTITY),  # four decimals: malformed
        ("x" * 500 + ", gzip", "gzip"),
    ],
)
def test_accept_encoding(header: str | None, coding: str) -> None:
    assert negotiate(header) == coding


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_each_coding_decompresses_to_the_body(coding: str) -> None:
    body = b'{"a":"' + bytes(random.Random(1).choices(b"abcdef", k=300_000)) + b'"}'
    packed = compression.COMPRESSORS[coding](body)
    unpack = {"gzip": gzip.decompress, "br": brotli.decompress, "zstd": zstandard.ZstdDecompressor().decompress}
    assert unpack[coding](packed) == body
    assert len(packed) < len(body) / 2


async def test_a_representation_is_built_once_and_kept_with_its_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = compression.COMPRESSORS["gzip"]
    monkeypatch.setitem(compression.COMPRESSORS, "gzip", lambda body: calls.append(1) or real(body))

    async def build() -> bytes:
        await asyncio.sleep(0.01)
        return b"x" * 5000

    cache = ResponseCache(60, max_bytes=1 << 20)
    entries = await asyncio.gather(*(cache.get_or_build("/k", frozenset({ALL}), build) for _ in range(20)))
    assert all(e is entries[0] for e in entries)  # 20 concurrent misses, one build
    reps = await asyncio.gather(*(cache.representation(entries[0], "gzip") for _ in range(20)))
    assert all(r is reps[0] for r in reps) and calls == [1]
    assert gzip.decompress(reps[0].body) == b"x" * 5000
    assert reps[0].etag != entries[0].etag and reps[0].headers["Content-Encoding"] == "gzip"
    assert cache.bytes == sum(len(r.body) for r in entries[0].reps.values()) + cache_overheads(cache)


def cache_overheads(cache: ResponseCache) -> int:
    from services.api.cache import ENTRY_OVERHEAD

    held = {id(e): e for e in cache.entries.values()}
    return len(held) * ENTRY_OVERHEAD + sum(
        KEY_OVERHEAD * (len(e.reps) - 1) + sum(len(k) + KEY_OVERHEAD for k in e.keys) for e in held.values()
    )


async def test_the_cache_stays_under_its_byte_budget_and_keeps_the_hottest() -> None:
    budget = 2 * 1024 * 1024
    cache = ResponseCache(600, max_bytes=budget)
    rng = random.Random(7)
    hot = [f"/api/v1/models?limit=500&min_context={n}" for n in range(5)]

    def builder(n: int) -> object:
        async def build() -> bytes:
            return rng.randbytes(10_000 + n % 7 * 1_500).hex().encode()

        return build

    # Far past the budget: 2,000 distinct queries of ~20-40 kB, each also asked in two codings and
    # by a raw alias; the hot ones asked again between every few others.
    for n in range(2000):
        key = f"/api/v1/models?limit=500&min_context={1000 + n}"
        entry = await cache.get_or_build(key, frozenset({ALL}), builder(n), alias=key + "&")  # type: ignore[arg-type]
        for coding in ("gzip", "zstd"):
            await cache.representation(entry, coding)
        assert cache.bytes <= budget, n
        if n % 5 == 0:
            for k in hot:
                if cache.lookup(k) is None:
                    await cache.get_or_build(k, frozenset({ALL}), builder(0))  # type: ignore[arg-type]
        assert cache.bytes <= budget, n
    assert cache.evictions > 1000
    assert all(cache.lookup(k) is not None for k in hot)
    assert cache.bytes == sum(
        len(r.body) for e in {id(e): e for e in cache.entries.values()}.values() for r in e.reps.values()
    ) + cache_overheads(cache)


async def test_an_entry_over_its_share_is_served_but_not_kept() -> None:
    cache = ResponseCache(600, max_bytes=100_000)

    async def big() -> bytes:
        return b"y" * 30_000

    entry = await cache.get_or_build("/big", frozenset({ALL}), big)
    assert entry.body == b"y" * 30_000
    assert cache.lookup("/big") is None and cache.bytes == 0


async def test_drop_and_clear_account_for_every_byte() -> None:
    cache = ResponseCache(600, max_bytes=1 << 20)

    async def body() -> bytes:
        return b"z" * 4000

    for pid in ("a", "b", "c"):
        e = await cache.get_or_build(f"/{pid}", frozenset({pid}), body, alias=f"/{pid}?x")
        await cache.representation(e, "br")
    cache.drop(["a"])
    assert cache.lookup("/a") is None and cache.lookup("/a?x") is None and cache.lookup("/b") is not None
    assert cache.bytes == cache_overheads(cache) + sum(
        len(r.body) for e in {id(e): e for e in cache.entries.values()}.values() for r in e.reps.values()
    )
    cache.clear("test")
    assert cache.bytes == 0 and not cache.entries


def test_the_totals_memo_is_bounded_in_bytes() -> None:
    cache = ResponseCache(600, max_bytes=160_000)
    memo = TotalsMemo(cache)
    assert memo.max_bytes == 10_000
    memo.get("warm")
    for n in range(1000):
        memo.put(f"filter-{n}", cache.version, n)
        memo.get("filter-0")  # kept hot
        assert memo.bytes <= memo.max_bytes
    assert memo.get("filter-0") == 0 and memo.get("filter-999") == 999 and memo.get("filter-1") is None


def test_totals_of_a_past_catalog_outlive_new_catalog_versions() -> None:
    """A total counted for a past catalog (`at=`, its key names the version) never changes: a new
    catalog version forgets the current totals, not those."""
    cache = ResponseCache(600, max_bytes=160_000)
    memo = TotalsMemo(cache)
    memo.get("warm")
    memo.put("capability=vision", cache.version, 40)
    memo.put("capability=vision@12", None, 30)
    cache.version += 1
    assert memo.get("capability=vision") is None and memo.get("capability=vision@12") == 30
    for n in range(1000):  # bounded as the current ones are
        memo.put(f"filter-{n}@12", None, n)
        memo.get("capability=vision@12")  # kept hot
        assert memo.past_bytes <= memo.max_bytes
    assert memo.get("capability=vision@12") == 30 and memo.get("filter-1@12") is None


def test_past_instants_are_remembered_least_recently_used_out() -> None:
    instants = PastInstants(size=3)
    t = [datetime(2026, 5, d, tzinfo=UTC) for d in range(1, 6)]
    instants.put(t[0], 7, t[0])
    instants.put(t[1], 0, None)  # before the first data
    instants.put(t[2], 9, t[2])
    assert instants.get(t[0]) == (7, t[0])  # kept hot
    instants.put(t[3], 9, t[2])
    assert instants.get(t[1]) is None and instants.get(t[0]) == (7, t[0]) and instants.get(t[3]) == (9, t[2])
    assert len(instants.known) == 3


async def test_requests_for_a_filter_being_counted_wait_for_that_count() -> None:
    """After a new catalog version every popular search is asked for at once: one request counts
    each filter, the others wait for its total (a failed count lets them count it themselves)."""
    cache = ResponseCache(600)
    memo = TotalsMemo(cache)
    counts: list[str] = []

    async def page(key: str, total: int, fail: bool = False) -> int:
        known = await memo.known(key)
        with memo.counting(key) as counted:
            if known is None:
                counts.append(key)
                await asyncio.sleep(0.02)
                if fail:
                    raise RuntimeError("count failed")
                known = total
            counted(known)
        memo.put(key, cache.version, known)
        return known

    assert await asyncio.gather(*(page("q=qwen", 7) for _ in range(10))) == [7] * 10
    assert counts == ["q=qwen"]
    assert await page("q=qwen", 99) == 7  # then remembered

    counts.clear()
    results = await asyncio.gather(
        page("q=gpt", 3, fail=True), *(page("q=gpt", 3) for _ in range(3)), return_exceptions=True
    )
    assert isinstance(results[0], RuntimeError) and results[1:] == [3, 3, 3]
    assert counts[0] == "q=gpt" and len(counts) > 1  # the failure let the waiters count

    counts.clear()
    first = asyncio.ensure_future(page("q=claude", 5))
    await asyncio.sleep(0.005)
    cache.version += 1  # a count of the old catalog is no answer for the new one
    assert await asyncio.gather(first, page("q=claude", 6)) == [5, 6]
    assert counts == ["q=claude", "q=claude"]


async def test_a_lasting_entry_over_its_share_is_kept_packed() -> None:
    """A whole-catalog document too large to keep as it is: kept compressed only, counted as such,
    built once, and served in every coding and as it is."""
    cache = ResponseCache(600, max_bytes=100_000)
    body = json.dumps([{"id": f"provider-{n % 97}/model-{n}", "cost": n % 13} for n in range(2000)]).encode()
    builds = 0

    async def document() -> bytes:
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.01)
        return body

    assert len(body) > cache.max_entry
    entries = await asyncio.gather(
        *(cache.get_or_build("/api.json", frozenset({ALL}), document, lasting=True) for _ in range(5))
    )
    entry = await cache.get_or_build("/api.json", frozenset({ALL}), document, lasting=True)
    assert builds == 1 and all(e is entry for e in entries) and cache.lookup("/api.json") is entry
    assert entry.packed and set(entry.reps) == {"zstd"} and cache.bytes < len(body) // 4
    assert entry.body == body
    identity = await cache.representation(entry, IDENTITY)
    assert identity.body == body and identity.etag == entry.etag and "Content-Encoding" not in identity.headers
    assert gzip.decompress((await cache.representation(entry, "gzip")).body) == body
    assert set(entry.reps) == {"zstd", "gzip"} and cache.bytes == cache_overheads(cache) + sum(
        len(r.body) for r in entry.reps.values()
    )
    assert builds == 1
