"""Canonical models through the API (issue 16): models.dev's /models.json and /catalog.json
mirrored, the card list and one card with its offerings, benchmark results from imports and cards,
and model lists sorted and filtered by a benchmark. Every expectation is computed from the
2026-07-02 documents themselves."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api.main import create_app
from shared.config import RateLimit, Settings
from shared.embedded import document
from tests.support import (
    ADMIN,
    CATALOG_NEW,
    create_database,
    database_name,
    drop_database,
    fake_upstream,
    flat_models,
    pipeline,
    refresh_inline,
)

MODELS_DOC_NAME = "models-2026-07-02"
API = json.loads(document(CATALOG_NEW))
CARDS: dict[str, dict[str, Any]] = json.loads(document(MODELS_DOC_NAME))
OFFERINGS = flat_models(API)


def segment(model_id: str) -> str:
    return model_id.rsplit("/", 1)[-1].lower()


def expected_links() -> dict[tuple[str, str], str]:
    """(provider_id, model_id) -> canonical id, by the rule (the 2026-07-02 api.json names no
    card, so every link is inferred): the last segment equals exactly one card's."""
    by_segment: dict[str, list[str]] = {}
    for cid in CARDS:
        by_segment.setdefault(segment(cid), []).append(cid)
    return {key: by_segment[segment(key[1])][0] for key in OFFERINGS if len(by_segment.get(segment(key[1]), [])) == 1}


LINKS = expected_links()


def card_results(cid: str) -> list[dict[str, Any]]:
    return [b for b in CARDS[cid].get("benchmarks") or [] if b.get("score") is not None]


@pytest.fixture
async def loaded(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """An API client on the 2026-07-02 catalog and models document, loaded through the pipeline."""
    async with fake_upstream(document(CATALOG_NEW)) as up:
        up.models_body = document(MODELS_DOC_NAME)
        async with pipeline(settings, modelsdev_url=up.url) as ctx:
            run = await refresh_inline(ctx)
            assert run["status"] == "succeeded", dict(run)
    async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as client:
        yield client


async def get_json(client: TestClient, url: str, status: int = 200, **kw: Any) -> Any:  # type: ignore[type-arg]
    resp = await client.get(url, **kw)
    assert resp.status == status, (url, resp.status, await resp.text())
    return await resp.json(content_type=None)


async def walk(client: TestClient, url: str) -> tuple[list[dict[str, Any]], int]:  # type: ignore[type-arg]
    """Every row of a list, page by page, and its total (the same on every page)."""
    rows: list[dict[str, Any]] = []
    totals: set[int] = set()
    cursor = None
    for _ in range(2000):
        sep = "&" if "?" in url else "?"
        page = await get_json(client, url + (f"{sep}cursor={quote(cursor, safe='')}" if cursor else ""))
        assert set(page) == {"data", "total", "next_cursor"}
        rows += page["data"]
        totals.add(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert page["data"]
    assert len(totals) == 1, totals
    return rows, totals.pop()


async def test_documents_deep_equal_the_upstream(loaded: TestClient) -> None:  # type: ignore[type-arg]
    assert await get_json(loaded, "/models.json") == CARDS
    resp = await loaded.get("/catalog.json", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Vary"] == "Accept-Encoding" and resp.headers["Access-Control-Allow-Origin"] == "*"
    assert await resp.json() == {"models": CARDS, "providers": API}
    again = await loaded.get(
        "/catalog.json", headers={"Accept-Encoding": "gzip", "If-None-Match": resp.headers["ETag"]}
    )
    assert again.status == 304
    sliced = await get_json(loaded, "/catalog.json?provider=openai,anthropic&type=all")
    assert sliced == {"models": CARDS, "providers": {p: API[p] for p in ("openai", "anthropic")}}
    head = await loaded.head("/models.json")
    assert head.status == 200 and head.headers["ETag"]


async def test_documents_are_empty_without_cards(settings: Settings) -> None:
    async with fake_upstream(document(CATALOG_NEW)) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)  # the upstream answers 404 for /models.json
    async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as client:
        assert await get_json(client, "/models.json") == {}
        assert await get_json(client, "/catalog.json") == {"models": {}, "providers": API}
        assert await get_json(client, "/api/v1/canonical-models") == {"data": [], "total": 0, "next_cursor": None}
        assert (await get_json(client, "/api/v1/models?has_benchmark=SciCode"))["total"] == 0


def _haystack(cid: str) -> str:
    card = CARDS[cid]
    return f"{cid} {card.get('name') or ''} {card.get('family') or ''}".lower()


async def test_canonical_model_list_filters_and_paging(loaded: TestClient) -> None:  # type: ignore[type-arg]
    rows, total = await walk(loaded, "/api/v1/canonical-models?limit=17")
    assert total == len(CARDS) == len(rows)
    assert [r["id"] for r in rows] == sorted(CARDS)
    for r in rows:  # the card exactly, with modelmeta's fields (what a mirror strips again)
        added = {"content_hash", "first_seen_at", "updated_at", "removed_at"}
        assert {k: v for k, v in r.items() if k not in added} == CARDS[r["id"]]
        assert r["removed_at"] is None and r["first_seen_at"] and len(r["content_hash"]) == 64

    families = sorted(
        {c["family"] for c in CARDS.values() if c.get("family")},
        key=lambda f: -sum(1 for c in CARDS.values() if c.get("family") == f),
    )[:2]
    cases: dict[str, set[str]] = {
        "has_benchmarks=true": {c for c, v in CARDS.items() if v.get("benchmarks")},
        "has_benchmarks=false": {c for c, v in CARDS.items() if not v.get("benchmarks")},
        f"family={quote(families[0])}": {c for c, v in CARDS.items() if v.get("family") == families[0]},
        f"family={quote(','.join(families))}": {c for c, v in CARDS.items() if v.get("family") in families},
        "q=QWEN": {c for c in CARDS if "qwen" in _haystack(c)},
        "q=claude%20opus": {c for c in CARDS if "claude" in _haystack(c) and "opus" in _haystack(c)},
        f"q=qwen&has_benchmarks=true&family={quote(families[0])}": {
            c
            for c, v in CARDS.items()
            if "qwen" in _haystack(c) and v.get("benchmarks") and v.get("family") == families[0]
        },
        "q=no-such-model-anywhere": set(),
    }
    assert len(cases["has_benchmarks=true"]) == 97
    for query, expected in cases.items():
        got, n = await walk(loaded, f"/api/v1/canonical-models?{query}&limit=7")
        assert n == len(expected), query
        assert [r["id"] for r in got] == sorted(expected), query
    assert len(cases["q=QWEN"]) > 7  # paged


async def test_one_canonical_model_with_its_offerings(loaded: TestClient) -> None:  # type: ignore[type-arg]
    linked: dict[str, list[tuple[str, str]]] = {}
    for key, cid in sorted(LINKS.items()):
        linked.setdefault(cid, []).append(key)
    cid = max(linked, key=lambda c: (len(linked[c]), c))  # the card offered by the most providers
    card = await get_json(loaded, f"/api/v1/canonical-models/{cid}")
    offerings = card.pop("offerings")
    assert {
        k: v for k, v in card.items() if k not in ("content_hash", "first_seen_at", "updated_at", "removed_at")
    } == (CARDS[cid])
    assert [(o["provider_id"], o["model_id"]) for o in offerings] == linked[cid]
    for o in offerings:
        model = OFFERINGS[o["provider_id"], o["model_id"]]
        assert o == {
            "id": f"{o['provider_id']}/{o['model_id']}",
            "provider_id": o["provider_id"],
            "model_id": o["model_id"],
            "name": model["name"],
            "canonical_link": "inferred",
            "cost": model.get("cost"),
            "limit": model.get("limit"),
        }
    lonely = next(c for c in sorted(CARDS) if c not in linked)
    assert (await get_json(loaded, f"/api/v1/canonical-models/{lonely}"))["offerings"] == []
    lab, rest = cid.split("/", 1)
    assert (await get_json(loaded, f"/api/v1/canonical-models/{lab}/{quote(rest, safe='')}"))["id"] == cid
    deeper = await get_json(loaded, f"/api/v1/canonical-models/{lab}/x%2F{quote(rest, safe='')}", 404)
    assert f"{lab}/x/{rest}" in deeper["detail"]  # an id may hold `/`, given as %2F too
    problem = await get_json(loaded, "/api/v1/canonical-models/nolab/no-such-model", 404)
    assert problem["status"] == 404 and "nolab/no-such-model" in problem["detail"]
    await get_json(loaded, "/api/v1/canonical-models/onlylab", 404)
    # The model object says its link.
    pid, mid = linked[cid][0]
    model = await get_json(loaded, f"/api/v1/models/{pid}/{mid}")
    assert (model["canonical_id"], model["canonical_link"]) == (cid, "inferred")


async def test_benchmarks_merge_imports_and_cards(loaded: TestClient) -> None:  # type: ignore[type-arg]
    (pid, mid), cid = next((k, c) for k, c in sorted(LINKS.items()) if len(card_results(c)) >= 2)
    results = card_results(cid)
    imported = [
        {"model": f"{pid}/{mid}", "benchmark": results[0]["name"], "score": 1.5, "metric": "mine", "source": "lab"},
        {"model": f"{pid}/{mid}", "benchmark": "Zeta Bench", "score": 2.0},
    ]
    resp = await loaded.post("/api/v1/benchmarks", json=imported, headers=ADMIN)
    assert resp.status == 201, await resp.text()

    rows, total = await walk(loaded, f"/api/v1/models/{pid}/{mid}/benchmarks?limit=1")
    assert total == len(rows) == len(results) + 2
    by_origin = {o: [r for r in rows if r["origin"] == o] for o in ("import", "models.dev")}
    assert sorted((r["benchmark"], r["score"], r["source"]) for r in by_origin["import"]) == [
        (results[0]["name"], 1.5, "lab"),
        ("Zeta Bench", 2.0, None),
    ]
    assert all(r["canonical_id"] is None and r["harness"] is None for r in by_origin["import"])
    card_rows = sorted(by_origin["models.dev"], key=lambda r: (r["benchmark"], r["score"]))
    want = sorted(results, key=lambda b: (b["name"], b["score"]))
    for r, b in zip(card_rows, want, strict=True):
        assert r["model"] == f"{pid}/{mid}" and r["canonical_id"] == cid
        assert (r["benchmark"], r["score"], r["metric"], r["source"]) == (
            b["name"],
            b["score"],
            b.get("metric"),
            b.get("source"),
        )
        assert r["date"] == b.get("date")
        assert all(r[f] == b.get(f) for f in ("harness", "variant", "dataset", "version"))
    # Every card result of every linked model, through the all-results list (paged across models).
    everything, n = await walk(loaded, "/api/v1/benchmarks?limit=500")
    assert n == len(everything) == sum(len(card_results(c)) for c in LINKS.values()) + 2
    keys = [
        (*r["model"].split("/", 1), r["benchmark"], r["metric"] or "", r["source"] or "", r["origin"])
        for r in everything
    ]
    assert keys == sorted(keys)

    # Qualifiers come through, and a card's results that differ only by them page one by one.
    def repeats(cid: str) -> bool:
        seen = [(b["name"], b.get("metric"), b.get("source")) for b in card_results(cid)]
        return len(set(seen)) < len(seen) and any("harness" in b and "variant" in b for b in card_results(cid))

    qualified = next((k, c) for k, c in sorted(LINKS.items()) if repeats(c))
    (qp, qm), qc = qualified
    got, _ = await walk(loaded, f"/api/v1/models/{qp}/{qm}/benchmarks?limit=1")
    assert sorted((r["benchmark"], r["harness"] or "", r["variant"] or "", r["score"]) for r in got) == sorted(
        (b["name"], b.get("harness") or "", b.get("variant") or "", b["score"]) for b in card_results(qc)
    )
    await get_json(loaded, "/api/v1/models/nope/nothing/benchmarks", 404)
    await get_json(loaded, f"/api/v1/models/{pid}/{mid}/benchmarks?cursor=bm90LWEtY3Vyc29y", 400)

    # compare shows both, side by side.
    other = next(k for k, c in sorted(LINKS.items()) if c != cid and card_results(c))
    cmp = await get_json(loaded, f"/api/v1/models/compare?ids={pid}/{mid},{other[0]}/{other[1]}")
    table = cmp["benchmarks"]
    for model, card in (((pid, mid), cid), (other, LINKS[other])):
        shown = {
            name: scores[f"{model[0]}/{model[1]}"]
            for name, scores in table.items()
            if f"{model[0]}/{model[1]}" in scores
        }
        assert sorted(shown.values()) == sorted(
            [b["score"] for b in card_results(card)] + ([1.5, 2.0] if model == (pid, mid) else [])
        )
    assert table["Zeta Bench"] == {f"{pid}/{mid}": 2.0}


def _best(key: tuple[str, str], name: str) -> float | None:
    cid = LINKS.get(key)
    scores = [b["score"] for b in card_results(cid) if b["name"].lower() == name.lower()] if cid else []
    return max(scores) if scores else None


@pytest.mark.parametrize("descending", [True, False])
async def test_model_lists_sort_and_filter_by_benchmark(
    loaded: TestClient,  # type: ignore[type-arg]
    descending: bool,
) -> None:
    name = "SWE-Bench Pro"
    listed = sorted(OFFERINGS)
    scored = {k: s for k in listed if (s := _best(k, name)) is not None}
    assert len(scored) > 20
    with_score = sorted(scored, key=lambda k: ((-scored[k] if descending else scored[k]), k))
    expected = [f"{p}/{m}" for p, m in with_score + [k for k in listed if k not in scored]]
    sign = "-" if descending else ""
    rows, total = await walk(loaded, f"/api/v1/models?sort={sign}benchmark:{quote(name.lower())}&limit=97")
    assert total == len(OFFERINGS)
    assert [r["id"] for r in rows] == expected
    # The filter, combined with another filter and a sort, on a provider's list and a capability's.
    rows, total = await walk(
        loaded, f"/api/v1/models?has_benchmark=swe-bench%20PRO&sort={sign}benchmark:{quote(name)}&limit=5"
    )
    assert total == len(scored) and [r["id"] for r in rows] == expected[: len(scored)]
    provider = max({p for p, _ in scored}, key=lambda p: (sum(1 for q, _ in scored if q == p), p))
    rows, total = await walk(loaded, f"/api/v1/providers/{provider}/models?has_benchmark={quote(name)}&limit=3")
    assert [r["id"] for r in rows] == [f"{p}/{m}" for p, m in sorted(scored) if p == provider]
    tools = [f"{p}/{m}" for p, m in sorted(scored) if OFFERINGS[p, m].get("tool_call")]
    rows, total = await walk(loaded, f"/api/v1/models/capability/tool_call?has_benchmark={quote(name)}&limit=4")
    assert [r["id"] for r in rows] == tools and total == len(tools)
    assert (await get_json(loaded, "/api/v1/models?has_benchmark=No%20Such%20Bench"))["total"] == 0

    # With a search (best match first): the same filter, on the ranked path.
    def found(p: str, m: str) -> bool:
        model = OFFERINGS[p, m]
        return "claude" in f"{p}/{m} {model['name']} {model.get('family') or ''} {API[p]['name']}".lower()

    rows, total = await walk(loaded, f"/api/v1/models?q=Claude&has_benchmark={quote(name)}&limit=6")
    assert sorted(r["id"] for r in rows) == sorted(f"{p}/{m}" for p, m in scored if found(p, m))
    assert total == len(rows) > 6


async def test_sort_and_filter_by_benchmark_at_a_past_instant(settings: Settings) -> None:
    name = "Aider Polyglot"
    scored = {k: s for k in OFFERINGS if (s := _best(k, name)) is not None}
    expected = [f"{p}/{m}" for p, m in sorted(scored, key=lambda k: (-scored[k], k))]
    gone = expected[0].split("/", 1)[0]  # the provider of the best score leaves the catalog
    async with fake_upstream(document(CATALOG_NEW)) as up:
        up.models_body = document(MODELS_DOC_NAME)
        async with pipeline(settings, modelsdev_url=up.url) as ctx:
            await refresh_inline(ctx)
            then = datetime.now(UTC)
            up.body = json.dumps({p: v for p, v in API.items() if p != gone}).encode()
            assert (await refresh_inline(ctx))["status"] == "succeeded"
    url = f"/api/v1/models?has_benchmark={quote(name)}&sort=-benchmark:{quote(name)}&limit=9"
    async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as client:
        rows, total = await walk(client, f"{url}&at={quote(then.isoformat())}")
        assert [r["id"] for r in rows] == expected and total == len(expected)
        rows, total = await walk(client, url)
        assert [r["id"] for r in rows] == [i for i in expected if not i.startswith(gone + "/")]
        assert await get_json(client, f"/models.json?at={quote(then.isoformat())}") == CARDS
        assert await get_json(client, "/models.json?at=2000-01-01") == {}
        past = await get_json(client, f"/catalog.json?at={quote(then.isoformat())}")
        assert past == {"models": CARDS, "providers": API}


async def test_bad_parameters_are_named(loaded: TestClient) -> None:  # type: ignore[type-arg]
    for url, names in (
        (
            "/api/v1/canonical-models?limit=0&has_benchmarks=maybe&colour=red&q=%20",
            {"limit", "has_benchmarks", "colour", "q"},
        ),
        ("/api/v1/canonical-models/a/b?x=1", {"x"}),
        ("/api/v1/models?sort=benchmark:&has_benchmark=%20", {"sort", "has_benchmark"}),
        ("/api/v1/models?sort=-benchmark", {"sort"}),
        ("/api/v1/models?has_benchmark=" + "x" * 201, {"has_benchmark"}),
        ("/api/v1/benchmarks?cursor=!", {"cursor"}),
    ):
        problem = await get_json(loaded, url, 400)
        assert {p["name"] for p in problem["invalid_params"]} == names, url
    # A cursor of another order is refused, not misread.
    page = await get_json(loaded, "/api/v1/models?sort=-benchmark:SciCode&limit=2")
    other = await get_json(loaded, f"/api/v1/models?sort=-benchmark:Terminal-Bench&cursor={page['next_cursor']}", 400)
    assert other["invalid_params"][0]["name"] == "cursor"
    doc = await get_json(loaded, "/api/v1/openapi.json")
    for path in ("/models.json", "/catalog.json", "/api/v1/canonical-models", "/api/v1/canonical-models/{lab}/{id}"):
        assert "get" in doc["paths"][path], path
    params = {p["name"] for p in doc["paths"]["/api/v1/models"]["get"]["parameters"]}
    assert {"sort", "has_benchmark"} <= params
    assert re.search("benchmark", json.dumps(doc["paths"]["/api/v1/models"]["get"]["parameters"]))


async def test_a_removed_card_leaves_the_documents_and_stays_readable(settings: Settings) -> None:
    gone = next(c for c in sorted(CARDS) if c in set(LINKS.values()) and card_results(c))
    offered = sorted(k for k, c in LINKS.items() if c == gone)
    async with fake_upstream(document(CATALOG_NEW)) as up:
        up.models_body = document(MODELS_DOC_NAME)
        async with pipeline(settings, modelsdev_url=up.url) as ctx:
            await refresh_inline(ctx)
            up.models_body = json.dumps({c: v for c, v in CARDS.items() if c != gone}).encode()
            assert (await refresh_inline(ctx))["status"] == "succeeded"
    async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as client:
        assert await get_json(client, "/models.json") == {c: v for c, v in CARDS.items() if c != gone}
        listed, n = await walk(client, "/api/v1/canonical-models?limit=100")
        assert n == len(CARDS) - 1 and gone not in {r["id"] for r in listed}
        everything, n = await walk(client, "/api/v1/canonical-models?include_removed=true&limit=100")
        assert n == len(CARDS) and [r["id"] for r in everything] == sorted(CARDS)
        card = await get_json(client, f"/api/v1/canonical-models/{gone}")
        assert card["removed_at"] is not None and card["offerings"] == []  # its inferred links went with it
        pid, mid = offered[0]
        assert "canonical_id" not in await get_json(client, f"/api/v1/models/{pid}/{mid}")
        assert (await get_json(client, f"/api/v1/models/{pid}/{mid}/benchmarks"))["total"] == 0


async def test_a_mirror_carries_the_cards_and_links_exactly(settings: Settings) -> None:
    source = database_name(settings.database_url)
    dsn = await create_database(f"{source}_m", template=source)
    fast = RateLimit(10_000, 1.0)
    mirror = dataclasses.replace(settings, database_url=dsn, redis_prefix=f"{settings.redis_prefix}:m")
    try:
        async with fake_upstream(document(CATALOG_NEW)) as up:
            up.models_body = document(MODELS_DOC_NAME)
            async with pipeline(settings, modelsdev_url=up.url) as ctx:
                await refresh_inline(ctx)
        async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as a:
            base = str(a.make_url("")).rstrip("/")
            async with pipeline(mirror, modelsdev_url=base, upstream_rate_limit=fast) as ctx:
                run = await refresh_inline(ctx)
                assert run["status"] == "succeeded", dict(run)
            models_a, _ = await walk(a, "/api/v1/models?limit=500")
        async with TestClient(TestServer(create_app(mirror, enqueue=lambda _: None))) as b:
            assert await get_json(b, "/models.json") == CARDS
            models_b, _ = await walk(b, "/api/v1/models?limit=500")
            cards_b, _ = await walk(b, "/api/v1/canonical-models?limit=500")
        assert [{k: v for k, v in c.items() if k in CARDS[c["id"]]} for c in cards_b] == [
            CARDS[c] for c in sorted(CARDS)
        ]

        def links(models: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
            return {m["id"]: (m.get("canonical_id"), m.get("canonical_link")) for m in models}

        assert links(models_b) == links(models_a)
        assert sum(1 for v in links(models_a).values() if v[0]) == len(LINKS)
    finally:
        await drop_database(dsn)
