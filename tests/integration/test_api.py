"""The REST API against real PostgreSQL and Redis, loaded by the real refresh pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api import keys
from services.api.main import create_app
from shared import events
from shared.config import Settings
from shared.embedded import document
from tests.support import CATALOG_NEW, SAMPLE, fake_upstream, flat_models, matches_search, pipeline, refresh_inline

SAMPLE_DOC = json.loads(SAMPLE.read_bytes())
ADMIN = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with pipeline(settings) as ctx:
        await refresh_inline(ctx)
    sent: list[int] = []
    app = create_app(settings, enqueue=sent.append)
    async with TestClient(TestServer(app)) as c:
        c.sent = sent  # type: ignore[attr-defined]
        yield c


async def get_json(client: TestClient, url: str, status: int = 200, **kw: Any) -> Any:  # type: ignore[type-arg]
    resp = await client.get(url, **kw)
    assert resp.status == status, (url, resp.status, await resp.text())
    return await resp.json(content_type=None)


async def walk(client: TestClient, url: str) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        sep = "&" if "?" in url else "?"
        page = await get_json(client, url + (f"{sep}cursor={cursor}" if cursor else ""))
        out.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


async def test_every_model_with_its_upstream_fields(client: TestClient) -> None:  # type: ignore[type-arg]
    body = await get_json(client, "/api/v1/models?limit=500")
    expected = flat_models(SAMPLE_DOC)
    assert body["total"] == len(expected)
    for m in body["data"]:
        up = expected[(m["provider_id"], m["model_id"])]
        assert m["id"] == f"{m['provider_id']}/{m['model_id']}"
        assert {k: v for k, v in m.items() if k in up and k != "id"} == {k: v for k, v in up.items() if k != "id"}
        assert m["removed_at"] is None


async def test_filters_match_independent_counts(client: TestClient) -> None:  # type: ignore[type-arg]
    models = list(flat_models(SAMPLE_DOC).values())

    def count(pred: Any) -> int:
        return sum(1 for m in models if pred(m))

    cases = {
        "capability=tool_call&min_context=200000": lambda m: m["tool_call"] and m["limit"]["context"] >= 200000,
        "capability=vision,reasoning": lambda m: "image" in m["modalities"]["input"] and m["reasoning"],
        "input_modalities=audio": lambda m: "audio" in m["modalities"]["input"],
        "output_modalities=image": lambda m: "image" in m["modalities"]["output"],
        "status=deprecated": lambda m: m.get("status") == "deprecated",
        "status=active": lambda m: "status" not in m,
        "max_input_cost=1": lambda m: "cost" in m and m["cost"]["input"] <= 1,
        "released_after=2025-06-01": lambda m: m["release_date"] >= "2025-06-01",
        "family=llama": lambda m: m.get("family") == "llama",
        "provider=acme,openmix": lambda m: True,
    }
    for query, pred in cases.items():
        body = await get_json(client, f"/api/v1/models?{query}&limit=500")
        if query.startswith("provider="):
            want = len(SAMPLE_DOC["acme"]["models"]) + len(SAMPLE_DOC["openmix"]["models"])
        else:
            want = count(pred)
        assert 0 < want < len(models), query  # each case filters, and the sample has matches
        assert body["total"] == want, query
        assert len(body["data"]) == body["total"]
    cheapest_vision = min(m["cost"]["input"] for m in models if "image" in m["modalities"]["input"] and "cost" in m)
    body = await get_json(client, "/api/v1/models?capability=vision&sort=input_cost&limit=1")
    assert body["data"][0]["cost"]["input"] == cheapest_vision


def sample_order(sort: str, keep: Any = lambda pid, mid, m: True) -> list[str]:
    """The sample's model ids in the order `sort` asks for, read independently from the JSON: by the
    value (models without one last either way), then by provider and model id."""
    value = {
        "name": lambda m: m["name"].lower(),
        "release_date": lambda m: m.get("release_date"),
        "input_cost": lambda m: m.get("cost", {}).get("input"),
        "output_cost": lambda m: m.get("cost", {}).get("output"),
        "context": lambda m: m["limit"].get("context"),
    }[sort.lstrip("-")]
    rows = sorted((k, m) for k, m in flat_models(SAMPLE_DOC).items() if keep(*k, m))
    have = sorted(((k, m) for k, m in rows if value(m) is not None), key=lambda r: value(r[1]), reverse=sort[0] == "-")
    return [f"{p}/{mid}" for (p, mid), _ in have + [(k, m) for k, m in rows if value(m) is None]]


async def test_sorts_and_paging(client: TestClient) -> None:  # type: ignore[type-arg]
    for sort in ("name", "-name", "release_date", "-release_date", "input_cost", "-output_cost", "context", "-context"):
        rows = await walk(client, f"/api/v1/models?sort={sort}&limit=3")
        assert [r["id"] for r in rows] == sample_order(sort), sort
    # A search with an explicit sort is ordered by that sort (and pages like any other list).
    by_name = await walk(client, "/api/v1/models?q=a&sort=name&include_removed=true&limit=4")
    want = sample_order("name", lambda pid, mid, m: matches_search(SAMPLE_DOC, pid, mid, "a"))
    assert 4 < len(want) < 28
    assert [m["id"] for m in by_name] == want
    # Search and filters together: exactly the matching models, none when nothing matches.
    free = lambda pid, mid, m: m.get("cost", {}).get("input") == 0 and m["release_date"] >= "2000-01-01"  # noqa: E731
    for q, n in (("qwen", 1), ("0", 0)):
        got = await get_json(client, f"/api/v1/models?q={q}&sort=name&max_input_cost=0&released_after=2000-01-01")
        want = sample_order(
            "name", lambda pid, mid, m, q=q: free(pid, mid, m) and matches_search(SAMPLE_DOC, pid, mid, q)
        )
        assert len(want) == n, (q, want)
        assert [m["id"] for m in got["data"]] == want, q


async def test_one_model_with_slashes_and_encoded_slashes(client: TestClient) -> None:  # type: ignore[type-arg]
    m = await get_json(client, "/api/v1/models/openmix/meta/llama-4-scout")
    assert m["id"] == "openmix/meta/llama-4-scout"
    m2 = await get_json(client, "/api/v1/models/openmix/meta%2Fllama-4-scout")
    assert m2["id"] == m["id"]
    hist = await get_json(client, "/api/v1/models/openmix/meta/llama-4-scout/history")
    assert [c["kind"] for c in hist["data"]] == ["added"]
    problem = await get_json(client, "/api/v1/models/openmix/nope", 404)
    assert problem["status"] == 404


async def test_search_best_match_first(client: TestClient) -> None:  # type: ignore[type-arg]
    body = await get_json(client, "/api/v1/models?q=haiku")
    assert body["total"] == 2
    assert all("haiku" in m["id"] for m in body["data"])
    partial = await get_json(client, "/api/v1/models?q=sonn")
    assert partial["total"] == 2
    exact = await get_json(client, "/api/v1/models?q=Gem 2.5 Pro")
    assert exact["data"][0]["id"] == "gemstone/gem-2.5-pro"


async def test_compare_with_cost_estimate(client: TestClient) -> None:  # type: ignore[type-arg]
    url = (
        "/api/v1/models/compare?ids=northwind/nw-sonnet-4-5,gemstone/gem-2.5-pro"
        "&input_tokens=300000&output_tokens=1000&cached_tokens=100000"
    )
    body = await get_json(client, url)
    assert [m["id"] for m in body["data"]] == ["northwind/nw-sonnet-4-5", "gemstone/gem-2.5-pro"]
    assert body["largest_context"] == "gemstone/gem-2.5-pro"  # 1,048,576 > 1,000,000
    # Over 200k tokens of context both use their tier prices; cached input at cache_read.
    sonnet = (200000 * 6 + 100000 * 0.6 + 1000 * 22.5) / 1e6
    gem = (200000 * 2.5 + 100000 * 0.625 + 1000 * 15) / 1e6
    assert body["cost_estimates"] == {
        "northwind/nw-sonnet-4-5": pytest.approx(sonnet),
        "gemstone/gem-2.5-pro": pytest.approx(gem),
    }
    assert body["cheapest"] == "gemstone/gem-2.5-pro"
    assert "cost.input" in body["differences"]


async def test_capabilities_providers_and_api_json(client: TestClient) -> None:  # type: ignore[type-arg]
    caps = {c["name"]: c["count"] for c in (await get_json(client, "/api/v1/capabilities"))["data"]}
    models = list(flat_models(SAMPLE_DOC).values())
    assert caps["vision"] == sum("image" in m["modalities"]["input"] for m in models)
    assert caps["tool_call"] == sum(bool(m["tool_call"]) for m in models)
    by_cap = await get_json(client, "/api/v1/models/capability/vision?limit=500")
    assert by_cap["total"] == caps["vision"]
    providers = await get_json(client, "/api/v1/providers")
    assert {p["id"]: p["model_count"] for p in providers["data"]} == {
        pid: len(p["models"]) for pid, p in SAMPLE_DOC.items()
    }
    one = await get_json(client, "/api/v1/providers/acme")
    assert one["name"] == "Acme AI"
    pm = await get_json(client, "/api/v1/providers/acme/models?capability=reasoning")
    assert pm["total"] == sum(1 for m in SAMPLE_DOC["acme"]["models"].values() if m["reasoning"])
    assert await get_json(client, "/api.json") == SAMPLE_DOC


async def test_bad_parameters_are_400_with_invalid_params(client: TestClient) -> None:  # type: ignore[type-arg]
    bad = [
        ("/api/v1/models?limit=0", "limit"),
        ("/api/v1/models?limit=501", "limit"),
        ("/api/v1/models?limit=abc", "limit"),
        ("/api/v1/models?capability=telepathy", "capability"),
        ("/api/v1/models?min_context=-1", "min_context"),
        ("/api/v1/models?max_input_cost=nan", "max_input_cost"),
        ("/api/v1/models?released_after=2025-13", "released_after"),
        ("/api/v1/models?cursor=garbage", "cursor"),
        ("/api/v1/models?sort=price", "sort"),
        ("/api/v1/models?colour=red", "colour"),
        ("/api/v1/models?status=retired", "status"),
        ("/api/v1/models/compare?ids=acme/acme-large-3", "ids"),
        ("/api/v1/models/compare?ids=" + ",".join(f"a/{i}" for i in range(11)), "ids"),
        ("/api/v1/models/capability/telepathy", "capability"),
        ("/api/v1/changes?since=yesterday", "since"),
        ("/api/v1/refresh/abc", "run_id"),
    ]
    for url, name in bad:
        resp = await client.get(url)
        assert resp.status == 400, url
        assert resp.content_type == "application/problem+json"
        body = await resp.json(content_type=None)
        assert name in [p["name"] for p in body["invalid_params"]], (url, body)
    # A cursor from one ordering is refused by another.
    page = await get_json(client, "/api/v1/models?limit=2")
    resp = await client.get(f"/api/v1/models?limit=2&sort=name&cursor={page['next_cursor']}")
    assert resp.status == 400


async def test_etag_304_and_headers(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/api/v1/models?provider=acme")
    etag = resp.headers["ETag"]
    assert resp.headers["X-Catalog-Version"].isdigit()
    assert "max-age" in resp.headers["Cache-Control"]
    assert resp.headers["X-Request-ID"]
    again = await client.get("/api/v1/models?provider=acme", headers={"If-None-Match": etag})
    assert again.status == 304


async def test_refresh_auth_coalescing_and_idempotency(client: TestClient, settings: Settings) -> None:  # type: ignore[type-arg]
    assert (await client.post("/api/v1/refresh")).status == 401
    assert (await client.post("/api/v1/refresh", headers={"Authorization": "Bearer wrong"})).status == 403
    first = await client.post("/api/v1/refresh", headers=ADMIN, json={"force": True})
    assert first.status == 202
    run = await first.json()
    assert first.headers["Location"] == f"/api/v1/refresh/{run['id']}"
    assert run["status"] == "queued" and run["coalesced"] is False
    joined = await (await client.post("/api/v1/refresh", headers=ADMIN)).json()
    assert joined["id"] == run["id"] and joined["coalesced"] is True
    assert client.sent == [run["id"]]  # type: ignore[attr-defined]
    scoped = await (
        await client.post("/api/v1/refresh", headers={**ADMIN, "Idempotency-Key": "k1"}, json={"providers": ["acme"]})
    ).json()
    same = await (
        await client.post("/api/v1/refresh", headers={**ADMIN, "Idempotency-Key": "k1"}, json={"providers": ["acme"]})
    ).json()
    assert scoped["id"] == same["id"] != run["id"]
    bad = await client.post("/api/v1/refresh", headers=ADMIN, data=b'{"force": "yes"}')
    assert bad.status == 400
    detail = await get_json(client, f"/api/v1/refresh/{run['id']}")
    assert detail["providers"] == []
    status = await get_json(client, "/api/v1/refresh/status")
    assert status["data"][0]["id"] == scoped["id"]
    assert status["schedule"]["interval"] == settings.refresh_interval


async def test_benchmarks_import_json_and_csv(client: TestClient) -> None:  # type: ignore[type-arg]
    items = [
        {"model": "acme/acme-large-3", "benchmark": "mmlu", "score": 88.1, "source": "paper", "date": "2025-06-01"},
        {"model": "northwind/nw-opus-4", "benchmark": "mmlu", "score": 89.5},
    ]
    assert (await client.post("/api/v1/benchmarks", json=items)).status == 401
    resp = await client.post("/api/v1/benchmarks", json=items, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    csv_body = "model,benchmark,score,metric\nopenmix/meta/llama-4-scout,gpqa,55.2,accuracy\n"
    resp = await client.post("/api/v1/benchmarks", data=csv_body, headers={**ADMIN, "Content-Type": "text/csv"})
    assert resp.status == 201, await resp.text()
    got = await get_json(client, "/api/v1/models/openmix/meta/llama-4-scout/benchmarks")
    assert got["data"][0]["score"] == 55.2
    cmp = await get_json(client, "/api/v1/models/compare?ids=acme/acme-large-3,northwind/nw-opus-4")
    assert cmp["benchmarks"] == {"mmlu": {"acme/acme-large-3": 88.1, "northwind/nw-opus-4": 89.5}}
    unknown = await client.post("/api/v1/benchmarks", json=[{**items[0], "model": "acme/nope"}], headers=ADMIN)
    assert unknown.status == 400


async def test_health_ready_metrics_openapi(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await get_json(client, "/healthz"))["status"] == "ok"
    assert (await get_json(client, "/readyz"))["ready"] is True
    text = await (await client.get("/metrics")).text()
    assert "modelmeta_http_requests_total" in text
    doc = await get_json(client, "/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/models" in doc["paths"]
    assert (await client.get("/docs")).status == 200


async def test_changes_feed_and_cache_invalidation_on_refresh(settings: Settings) -> None:
    doc = json.loads(SAMPLE.read_bytes())
    async with fake_upstream(json.dumps(doc).encode()) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
        app = create_app(settings, enqueue=lambda _: None)
        async with TestClient(TestServer(app)) as client:
            before = await get_json(client, "/api/v1/models/acme/acme-large-3")
            assert before["cost"]["input"] == 1.25
            doc["acme"]["models"]["acme-large-3"]["cost"]["input"] = 1.1
            del doc["localai"]["models"]["whisper-large-v3"]
            up.body = json.dumps(doc).encode()
            run = await refresh_inline(ctx)
            assert run["status"] == "succeeded"
            for _ in range(100):
                after = await get_json(client, "/api/v1/models/acme/acme-large-3")
                if after["cost"]["input"] == 1.1:
                    break
                await asyncio.sleep(0.02)
            assert after["cost"]["input"] == 1.1
            feed = await get_json(client, "/api/v1/changes?since=0&limit=500")
            last = [c for c in feed["data"] if c["run_id"] == run["id"]]
            assert {(c["id"], c["kind"]) for c in last} == {
                ("acme/acme-large-3", "updated"),
                ("localai/whisper-large-v3", "removed"),
            }
            upd = next(c for c in last if c["kind"] == "updated")
            assert upd["fields"] == {"cost.input": [1.25, 1.1]}
            removed = await get_json(client, "/api/v1/models/localai/whisper-large-v3")
            assert removed["removed_at"] is not None
            assert (await get_json(client, "/api/v1/models?include_removed=true&limit=500"))["total"] == 28


async def test_real_catalog_paging_and_api_json(settings: Settings) -> None:
    body = document(CATALOG_NEW)
    doc = json.loads(body)
    async with fake_upstream(body) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
    app = create_app(settings, enqueue=lambda _: None)
    async with TestClient(TestServer(app)) as client:
        rows = await walk(client, "/api/v1/models?limit=37")
        assert len(rows) == sum(len(p["models"]) for p in doc.values())
        assert len({r["id"] for r in rows}) == len(rows)
        assert await get_json(client, "/api.json") == doc
        models = list(flat_models(doc).values())
        n = sum(1 for m in models if m["tool_call"] and m["limit"]["context"] >= 200000)
        assert (await get_json(client, "/api/v1/models?capability=tool_call&min_context=200000"))["total"] == n
        cheapest = min(m["cost"]["input"] for m in models if "image" in m["modalities"]["input"] and "cost" in m)
        top = await get_json(client, "/api/v1/models?capability=vision&sort=input_cost&limit=1")
        assert top["data"][0]["cost"]["input"] == cheapest

        def has(m: dict[str, Any], side: str, mod: str) -> bool:
            return mod in m["modalities"][side]

        def cost(m: dict[str, Any], k: str) -> float | None:
            return m.get("cost", {}).get(k)

        cases: dict[str, Any] = {
            "capability=reasoning,structured_output": lambda m: m["reasoning"] and m.get("structured_output"),
            "capability=open_weights": lambda m: m["open_weights"],
            "capability=temperature": lambda m: m.get("temperature"),
            "capability=attachment": lambda m: m["attachment"],
            "capability=interleaved": lambda m: bool(m.get("interleaved")),
            # (no model of this catalog takes PDF in and gives audio out: two cases that each match some)
            "capability=pdf_input,image_output": lambda m: has(m, "input", "pdf") and has(m, "output", "image"),
            "capability=audio_output": lambda m: has(m, "output", "audio"),
            "capability=video_input": lambda m: has(m, "input", "video"),
            "capability=image_output": lambda m: has(m, "output", "image"),
            "capability=audio_input": lambda m: has(m, "input", "audio"),
            "input_modalities=image,pdf": lambda m: has(m, "input", "image") and has(m, "input", "pdf"),
            "output_modalities=text": lambda m: has(m, "output", "text"),
            "status=beta,alpha": lambda m: m.get("status") in ("beta", "alpha"),
            "status=active": lambda m: "status" not in m,
            "status=deprecated,active": lambda m: m.get("status") in (None, "deprecated"),
            "family=gpt": lambda m: m.get("family") == "gpt",
            "min_context=1000000": lambda m: m["limit"]["context"] >= 1000000,
            "min_output=100000": lambda m: m["limit"]["output"] >= 100000,
            "max_input_cost=0.5": lambda m: cost(m, "input") is not None and cost(m, "input") <= 0.5,
            "max_output_cost=2&capability=tool_call": lambda m: (
                cost(m, "output") is not None and cost(m, "output") <= 2 and m["tool_call"]
            ),
            "released_after=2026-01-01": lambda m: m["release_date"] >= "2026-01-01",
            "released_before=2024-01-01": lambda m: m["release_date"] <= "2024-01-01",
            "provider=openai,anthropic": lambda m: False,
        }
        by_provider = flat_models(doc)
        for query, pred in cases.items():
            got = await get_json(client, f"/api/v1/models?{query}&limit=1")
            if query.startswith("provider="):
                want = len(doc["openai"]["models"]) + len(doc["anthropic"]["models"])
            else:
                want = sum(1 for m in by_provider.values() if pred(m))
            assert 0 < want < len(by_provider), query  # each case filters, and the catalog has matches
            assert got["total"] == want, query
        for sort, key in (("-input_cost", "input"), ("output_cost", "output")):
            page = await get_json(client, f"/api/v1/models?sort={sort}&limit=20&capability=tool_call")
            prices = [m["cost"][key] for m in page["data"]]
            assert prices == sorted(prices, reverse=sort.startswith("-"))
            priced = [cost(m, key) for m in models if m["tool_call"] and cost(m, key) is not None]
            assert prices[0] == (max(priced) if sort.startswith("-") else min(priced))
        claude = await get_json(client, "/api/v1/models?q=claude&limit=50")
        assert len(claude["data"]) == 50
        assert all("claude" in (m["id"] + m["name"]).lower() for m in claude["data"])
        assert claude["total"] == sum(1 for p, mid in flat_models(doc) if matches_search(doc, p, mid, "claude"))


async def walk_all(client: TestClient, url: str) -> tuple[list[dict[str, Any]], int]:  # type: ignore[type-arg]
    """Every row of a list, page by page, and the total every page announced (the same on each)."""
    rows: list[dict[str, Any]] = []
    totals: set[int] = set()
    cursor = None
    for _ in range(1000):
        sep = "&" if "?" in url else "?"
        page = await get_json(client, url + (f"{sep}cursor={cursor}" if cursor else ""))
        assert set(page) == {"data", "total", "next_cursor"}, page
        rows.extend(page["data"])
        totals.add(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert page["data"], "a page before the last is not empty"
    assert len(totals) == 1, totals
    return rows, totals.pop()


async def test_every_list_takes_limit_and_cursor(client: TestClient) -> None:  # type: ignore[type-arg]
    items = [
        {"model": "acme/acme-large-3", "benchmark": b, "score": 50 + i} for i, b in enumerate(("mmlu", "gpqa", "hle"))
    ] + [{"model": "northwind/nw-opus-4", "benchmark": "mmlu", "score": 89.5}]
    assert (await client.post("/api/v1/benchmarks", json=items, headers=ADMIN)).status == 201
    one_model = "/api/v1/models/acme/acme-large-3"
    lists = {
        "/api/v1/providers?limit=2": sorted(SAMPLE_DOC),
        "/api/v1/capabilities?limit=4": None,
        "/api/v1/changes?limit=7": None,
        "/api/v1/benchmarks?limit=1": None,
        f"{one_model}/benchmarks?limit=2": None,
        f"{one_model}/history?limit=1": None,
    }
    for url, ids in lists.items():
        rows, total = await walk_all(client, url)
        everything = await get_json(client, url.split("?")[0] + "?limit=500")
        assert everything["next_cursor"] is None
        assert rows == everything["data"], url
        assert total == everything["total"] == len(rows), url
        if ids is not None:
            assert [r["id"] for r in rows] == ids
    assert (await get_json(client, "/api/v1/capabilities"))["total"] == 13
    assert (await get_json(client, "/api/v1/changes?limit=500"))["total"] == 28
    assert (await get_json(client, "/api/v1/benchmarks"))["total"] == 4
    assert (await get_json(client, f"{one_model}/benchmarks"))["total"] == 3
    assert len((await get_json(client, "/api/v1/providers?limit=1"))["data"]) == 1
    for url in [u.split("?")[0] for u in lists] + ["/api/v1/models", "/api/v1/providers/acme/models"]:
        for bad in ("0", "501", "x"):
            problem = await get_json(client, f"{url}?limit={bad}", 400)
            assert [p["name"] for p in problem["invalid_params"]] == ["limit"], (url, problem)


async def test_history_pages_newest_first(settings: Settings) -> None:
    doc = json.loads(SAMPLE.read_bytes())
    async with fake_upstream(json.dumps(doc).encode()) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
        for price in (1.1, 1.0):
            doc["acme"]["models"]["acme-large-3"]["cost"]["input"] = price
            up.body = json.dumps(doc).encode()
            assert (await refresh_inline(ctx))["status"] == "succeeded"
    async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as client:
        rows, total = await walk_all(client, "/api/v1/models/acme/acme-large-3/history?limit=1")
        assert total == 3
        assert [r["kind"] for r in rows] == ["updated", "updated", "added"]
        assert [r["fields"] for r in rows[:2]] == [{"cost.input": [1.1, 1.0]}, {"cost.input": [1.25, 1.1]}]
        feed, total = await walk_all(client, "/api/v1/changes?kind=updated&limit=1")
        assert total == 2 and [c["fields"]["cost.input"][1] for c in feed] == [1.1, 1.0]
        since = feed[0]["seq"]
        later = await get_json(client, f"/api/v1/changes?since={since}")
        assert [c["seq"] for c in later["data"]] == [feed[1]["seq"]] and later["total"] == 1


async def test_the_seeds_refresh_routes_are_aliases(client: TestClient) -> None:  # type: ignore[type-arg]
    for url in ("/api/v1/models/refresh", "/api/v1/refresh"):
        assert (await client.post(url)).status == 401
        assert (await client.post(url, headers={"Authorization": "Bearer wrong"})).status == 403
        assert (await client.post(url, headers=ADMIN, data=b'{"force": "yes"}')).status == 400
    seed = await client.post("/api/v1/models/refresh", headers=ADMIN, json={"force": True})
    assert seed.status == 202
    run = await seed.json()
    assert seed.headers["Location"] == f"/api/v1/refresh/{run['id']}" and run["coalesced"] is False
    ours = await client.post("/api/v1/refresh", headers=ADMIN)
    assert (await ours.json())["id"] == run["id"] and (await ours.json())["coalesced"] is True
    assert client.sent == [run["id"]]  # type: ignore[attr-defined]
    seed_status = await get_json(client, "/api/v1/models/refresh/status")
    assert seed_status == await get_json(client, "/api/v1/refresh/status")
    assert seed_status["data"][0]["id"] == run["id"]
    # Another method on the seed's path is 405 (not a model called "refresh").
    wrong = await client.get("/api/v1/models/refresh")
    assert wrong.status == 405 and "POST" in wrong.headers["Allow"]
    doc = await get_json(client, "/api/v1/openapi.json")
    assert doc["paths"]["/api/v1/models/refresh"]["post"]["security"] == [{"bearer": []}]
    assert "get" in doc["paths"]["/api/v1/models/refresh/status"]


async def test_bare_model_ids(settings: Settings) -> None:
    doc = json.loads(SAMPLE.read_bytes())
    twin = {**doc["acme"]["models"]["acme-large-3"], "id": "twin-1", "name": "Twin 1"}
    doc["acme"]["models"]["twin-1"] = twin
    doc["localai"]["models"]["twin-1"] = twin
    async with fake_upstream(json.dumps(doc).encode()) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
    async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as client:

        async def moved(path: str) -> str:
            resp = await client.get(path, allow_redirects=False)
            assert resp.status == 308, (path, resp.status, await resp.text())
            return resp.headers["Location"]

        assert await moved("/api/v1/models/whisper-large-v3") == "/api/v1/models/localai/whisper-large-v3"
        # A bare id with a slash, whose first segment is no provider; and the same with %2F.
        assert await moved("/api/v1/models/meta/llama-4-scout") == "/api/v1/models/openmix/meta/llama-4-scout"
        assert await moved("/api/v1/models/meta%2Fllama-4-scout") == "/api/v1/models/openmix/meta/llama-4-scout"
        followed = await get_json(client, "/api/v1/models/meta/llama-4-scout")
        assert followed["id"] == "openmix/meta/llama-4-scout"
        twins = await client.get("/api/v1/models/twin-1", allow_redirects=False)
        assert twins.status == 300 and twins.content_type == "application/problem+json"
        problem = await twins.json(content_type=None)
        assert problem["status"] == 300 and problem["choices"] == ["acme/twin-1", "localai/twin-1"]
        for path in ("/api/v1/models/no-such-model", "/api/v1/models/meta/no-such-model"):
            assert (await get_json(client, path, 404))["status"] == 404
        # A first segment that is a provider is canonical, as before: openmix lists "openmix/auto",
        # and /models/openmix/auto is openmix's model "auto", which does not exist.
        await get_json(client, "/api/v1/models/openmix/auto", 404)
        assert (await get_json(client, "/api/v1/models/openmix/openmix/auto"))["model_id"] == "openmix/auto"
        assert (await get_json(client, "/api/v1/models/northwind/nw-sonnet-4-5"))["provider_id"] == "northwind"
        for reserved in ("/api/v1/models/compare/x", "/api/v1/models/capability", "/api/v1/models/refresh%2Fx"):
            assert (await client.get(reserved, allow_redirects=False)).status in (400, 404, 405), reserved
        doc_paths = (await get_json(client, "/api/v1/openapi.json"))["paths"]
        assert set(doc_paths["/api/v1/models/{model_id}"]["get"]["responses"]) >= {"300", "308", "404"}


async def test_every_bad_parameter_is_named_at_once(client: TestClient) -> None:  # type: ignore[type-arg]
    url = "/api/v1/models?limit=0&capability=telepathy&colour=red&min_context=x&sort=price&q=%20&cursor=%21"
    problem = await get_json(client, url, 400)
    reasons = {p["name"]: p["reason"] for p in problem["invalid_params"]}
    assert set(reasons) == {"limit", "capability", "colour", "min_context", "sort", "q", "cursor"}
    assert reasons["colour"] == "unknown parameter"
    assert reasons["limit"] == "expected a whole number 1..500, got '0'"
    assert "tool_call" in reasons["capability"] and "'telepathy'" in reasons["capability"]
    assert "name" in reasons["sort"] and "-context" in reasons["sort"]
    both = await get_json(client, "/api/v1/models/capability/telepathy?limit=0&provider=acme", 400)
    assert [p["name"] for p in both["invalid_params"]] == ["capability", "limit"]
    twice = await get_json(client, "/api/v1/models?limit=1&limit=2", 400)
    assert twice["invalid_params"][0]["name"] == "limit"
    # Optional parameters have no "null": leaving one out is how a query says it.
    for url in ("/api/v1/changes?since=null", "/api/v1/capabilities?cursor=null", "/api/v1/models?min_context=null"):
        await get_json(client, url, 400)
    missing = await get_json(client, "/api/v1/models/compare", 400)
    assert missing["invalid_params"] == [{"name": "ids", "reason": "required"}]
    header = await client.post("/api/v1/refresh", headers={**ADMIN, "Idempotency-Key": "k" * 201})
    assert header.status == 400
    assert (await header.json(content_type=None))["invalid_params"][0]["name"] == "Idempotency-Key"


async def test_the_document_lists_exactly_what_the_routes_accept(client: TestClient) -> None:  # type: ignore[type-arg]
    doc = await get_json(client, "/api/v1/openapi.json")
    checked = 0
    for path, ops in doc["paths"].items():
        get = ops.get("get")
        if get is None or "{" in path or "security" in get:
            continue  # an admin route answers 401 to this tokenless client before it reads a parameter
        names = [p["name"] for p in get.get("parameters", []) if p["in"] == "query"]
        # Each documented parameter is known to the route (a bad value is refused by name, never as
        # an unknown parameter); an undocumented one is unknown.
        query = "&".join(f"{n}=%E2%80%A2bad" for n in names) + "&undocumented=1"
        resp = await client.get(f"{path}?{query}")
        if path.startswith(("/healthz", "/readyz", "/metrics")):
            continue  # probes take no declared parameters
        problem = await resp.json(content_type=None)
        reasons = {p["name"]: p["reason"] for p in problem["invalid_params"]}
        if path in ("/api.json", "/models.json", "/catalog.json", "/model-schema.json", "/exports/litellm.json"):
            # models.dev's documents ignore the parameters they do not know, as models.dev does.
            assert "undocumented" not in reasons and set(reasons) <= set(names), (path, reasons)
            continue
        assert reasons.pop("undocumented") == "unknown parameter", path
        assert all(r != "unknown parameter" for r in reasons.values()), (path, reasons)
        assert set(reasons) <= set(names), path
        checked += 1
    assert checked >= 7


async def test_a_cache_hit_parses_nothing(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    from services.api import route

    calls: list[Any] = []
    real = route.decode

    def counting(values: Any, spec: Any, where: str = "query") -> Any:
        calls.append(spec)
        return real(values, spec, where)  # type: ignore[arg-type]

    # The listener clears the cache once it has subscribed: wait for that first.
    app = client.server.app  # type: ignore[union-attr]
    channel = events.channel(app[keys.SETTINGS].redis_prefix)
    for _ in range(200):
        if dict(await app[keys.REDIS].pubsub_numsub(channel)).get(channel.encode()):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    monkeypatch.setattr(route, "decode", counting)
    url = "/api/v1/models?capability=vision&sort=-context&limit=3"
    first = await get_json(client, url)
    assert len(calls) == 1
    for _ in range(3):
        assert await get_json(client, url) == first
    assert len(calls) == 1, "a cached answer is found by the raw path and query, before any parsing"
    # Another spelling of the same query is parsed once, and answered from the same entry.
    same = await client.get("/api/v1/models?limit=3&sort=-context&capability=vision")
    assert await same.json() == first and len(calls) == 2
    one = "/api/v1/models/openmix/meta%2Fllama-4-scout"
    await get_json(client, one)
    await get_json(client, one)
    assert len(calls) == 4  # its path and its (empty) query, once
