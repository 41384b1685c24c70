"""The REST API against real PostgreSQL and Redis, loaded by the real refresh pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api.main import create_app
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
