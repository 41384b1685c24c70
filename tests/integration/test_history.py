"""The catalog in time against real PostgreSQL and Redis: the two reference catalogs imported by
import-history, then read back as they stood at each instant (API.md, "The catalog at a point in time")."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
import msgspec
import pytest

from services.api import keys
from shared.catalog import MODEL_COLUMNS, ModelRecord, content_hash, model_row
from shared.config import Settings
from shared.db import Queryable, api_reads
from shared.db.history import catalog_at
from shared.embedded import document
from shared.listing import ModelQuery
from shared.schemas.api import Capability, Modality, ModelStatus
from shared.schemas.catalog import Model
from tests.integration.history_helpers import (
    NEW,
    OLD,
    api,
    get,
    imported_database,
    run_import,
    walk,
    write_catalogs,
)
from tests.support import flat_models, leaf_diff

MARCH, JULY = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 7, 2, tzinfo=UTC)
OLD_DOC, NEW_DOC = json.loads(document(OLD)), json.loads(document(NEW))


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_catalogs(tmp_path_factory.mktemp("catalogs"))


@pytest.fixture(scope="module")
def imported(template_db: str, catalogs: dict[str, Path]) -> Iterator[Settings]:
    """03-01 then 07-02, imported into an empty database."""
    with imported_database(template_db, [str(catalogs[OLD]), str(catalogs[NEW])]) as settings:
        yield settings


@pytest.fixture(scope="module")
def march_only(template_db: str, catalogs: dict[str, Path]) -> Iterator[Settings]:
    """03-01 alone: the catalog that `imported` held from 03-01 to 07-02."""
    with imported_database(template_db, [str(catalogs[OLD])]) as settings:
        yield settings


@pytest.fixture(scope="module")
def replayed(template_db: str, catalogs: dict[str, Path]) -> Iterator[Settings]:
    """03-01, 07-02, then 03-01 again on 08-01: models removed on 07-02 come back, those added leave."""
    specs = [str(catalogs[OLD]), str(catalogs[NEW]), f"{catalogs[OLD]}@2026-08-01T00:00:00Z"]
    with imported_database(template_db, specs) as settings:
        yield settings


async def test_api_json_at_each_instant(imported: Settings) -> None:
    async with api(imported) as client:
        for at, expected in (
            ("2026-03-01", OLD_DOC),
            ("2026-03-01T00:00:00Z", OLD_DOC),
            ("2026-05-01", OLD_DOC),
            ("2026-07-01T23:59:59.999999Z", OLD_DOC),
            ("2026-07-02", NEW_DOC),
            ("2026-07-02T00:00:00Z", NEW_DOC),
            ("2026-02-28", {}),
            ("2026-02-28T23:59:59.999999Z", {}),
        ):
            assert await get(client, f"/api.json?at={at}") == expected, at
        assert await get(client, "/api.json") == NEW_DOC
        # with models.dev's own parameters: one provider's slice of the catalog then
        sliced = await get(client, "/api.json?provider=openai&type=all&at=2026-05-01")
        assert sliced == {"openai": OLD_DOC["openai"]}

        version_then = await client.app[keys.POOL].fetchval(
            "SELECT max(version) FROM catalog_versions WHERE at <= '2026-05-01T23:59:59.999999Z'"
        )
        past = await client.get("/api.json?at=2026-05-01")
        assert past.headers["X-Catalog-Version"] == str(version_then)
        assert "immutable" in past.headers["Cache-Control"]
        # Another instant of the same catalog version: the same answer, from the same cache entry.
        again = await client.get("/api.json?at=2026-04-01T12:00:00Z")
        assert again.headers["ETag"] == past.headers["ETag"]
        assert (
            await client.get("/api.json?at=2026-05-01", headers={"If-None-Match": past.headers["ETag"]})
        ).status == 304
        before = await client.get("/api.json?at=2026-02-28")
        assert before.headers["X-Catalog-Version"] == "0"
        for path in ("/api/v1/models?", "/api/v1/models/capability/vision?", "/api/v1/providers/openai/models?"):
            assert await get(client, f"{path}at=2026-02-28") == {"data": [], "total": 0, "next_cursor": None}
        now = await client.get("/api.json")
        assert now.headers["Cache-Control"] == "public, max-age=15"
        assert int(now.headers["X-Catalog-Version"]) > int(past.headers["X-Catalog-Version"])


async def test_change_log_is_the_true_diff_at_the_documents_dates(imported: Settings) -> None:
    conn = await asyncpg.connect(imported.database_url)
    try:
        runs = await conn.fetch("SELECT id, trigger, status, changes_at FROM refresh_runs ORDER BY id")
        assert [(r["trigger"], r["status"], r["changes_at"]) for r in runs] == [
            ("import", "succeeded", MARCH),
            ("import", "succeeded", JULY),
        ]
        changes = await conn.fetch("SELECT run_id, provider_id, model_id, kind, fields, at FROM model_changes")
    finally:
        await conn.close()
    first = [c for c in changes if c["run_id"] == runs[0]["id"]]
    second = [c for c in changes if c["run_id"] == runs[1]["id"]]
    assert Counter(c["kind"] for c in first) == {"added": len(flat_models(OLD_DOC))}
    assert {c["at"] for c in first} == {MARCH}
    assert Counter(c["kind"] for c in second) == {"added": 2982, "removed": 759, "updated": 1540}
    assert {c["at"] for c in second} == {JULY}
    a, b = flat_models(OLD_DOC), flat_models(NEW_DOC)
    for c in second:
        key = (c["provider_id"], c["model_id"])
        if c["kind"] == "added":
            assert key in b and key not in a
        elif c["kind"] == "removed":
            assert key in a and key not in b
        else:
            assert json.loads(c["fields"]) == leaf_diff(a[key], b[key]), key
    assert {(c["provider_id"], c["model_id"]) for c in second if c["kind"] == "updated"} == {
        k for k in a.keys() & b.keys() if a[k] != b[k]
    }


async def test_versions_have_the_typed_values_of_their_objects(imported: Settings) -> None:
    """The generated columns of model_versions (SQL) equal what model_row (Python) gives `models`."""
    typed = [
        c
        for c in MODEL_COLUMNS
        if c not in ("provider_id", "model_id", "provider_name", "raw", "content_hash", "raw_sha256")
    ]
    conn = await asyncpg.connect(imported.database_url)
    try:
        rows = await conn.fetch(
            f"SELECT provider_id, model_id, provider_name, raw::text, {', '.join(typed)} FROM model_versions"
        )
        intervals = await conn.fetch(
            "SELECT count(*) FILTER (WHERE valid_to IS NULL) AS open, count(*) AS total, "
            "count(*) FILTER (WHERE removed_at IS NOT NULL) AS removed FROM model_versions"
        )
    finally:
        await conn.close()
    # Every model listed on 03-01 and on 07-02, once each; the models that left have a removed version.
    assert intervals[0]["removed"] == 759
    assert intervals[0]["open"] == len(flat_models(OLD_DOC).keys() | flat_models(NEW_DOC).keys())
    assert intervals[0]["total"] == len(flat_models(OLD_DOC)) + 2982 + 1540 + 759
    for r in rows:
        raw = json.loads(r["raw"])
        record = ModelRecord(r["model_id"], raw, content_hash(raw), msgspec.convert(raw, Model))
        expected = model_row(r["provider_id"], r["provider_name"], record)
        assert tuple(r[c] for c in typed) == tuple(expected[MODEL_COLUMNS.index(c)] for c in typed), r["model_id"]


class _Recorder:
    """A Queryable that records the statements it is given and answers nothing."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any, **kwargs: Any) -> list[Any]:
        self.statements.append((sql, args))
        return []

    async def fetchval(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append((sql, args))
        return 0


async def test_totals_at_an_instant_can_be_counted_from_the_interval_index(imported: Settings) -> None:
    """A list's total at an instant reads only migration 0014's index (an index-only scan), for
    every filter but the model type and search: it holds the interval and each filtered column.
    (The planner may prefer reading the table where it is small; here it is told not to.)"""
    queries = [
        ModelQuery(),
        ModelQuery(include_removed=True),
        ModelQuery(families=["gpt"], statuses=[ModelStatus.ACTIVE, ModelStatus.DEPRECATED]),  # providers: by key
        ModelQuery(capabilities=list(Capability), input_modalities=[Modality.PDF], output_modalities=[Modality.TEXT]),
        ModelQuery(min_context=1, min_output=1, max_input_cost=9.0, max_output_cost=9.0),
        ModelQuery(released_after="2024-01-01", released_before="2026-01-01", sort="input_cost", descending=True),
    ]
    conn = await asyncpg.connect(imported.database_url)
    try:
        await conn.execute("VACUUM model_versions")  # an index-only scan needs the visibility map
        await conn.execute("SET enable_seqscan = off")
        for q in queries:
            recorder = _Recorder()
            await api_reads.list_models(catalog_at(cast(Queryable, recorder), MARCH), q)
            sql, args = recorder.statements[0]
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", *args))
            counted = plan.split("InitPlan")[1].split("->  ")[2]  # the count's scan, under its aggregate
            assert counted.startswith("Index Only Scan using model_versions_at_idx"), (q, plan)
            assert "Heap Fetches: 0" in plan.split("InitPlan")[1], plan
    finally:
        await conn.close()


def _changed_price(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, str]:
    """A model listed in both catalogs, priced in both, whose input and output prices changed."""
    for key in sorted(a.keys() & b.keys()):
        ca, cb = a[key].get("cost") or {}, b[key].get("cost") or {}
        if "tiers" in ca or "tiers" in cb or "context_over_200k" in ca or "context_over_200k" in cb:
            continue
        if None not in (ca.get("input"), ca.get("output"), cb.get("input"), cb.get("output")) and (
            ca["input"] != cb["input"] and ca["output"] != cb["output"]
        ):
            return key
    raise AssertionError("no model whose price changed")


async def test_price_timeline_and_compare_at_the_prices_then(imported: Settings) -> None:
    a, b = flat_models(OLD_DOC), flat_models(NEW_DOC)
    pid, mid = _changed_price(a, b)
    other = next(k for k in sorted(a.keys() & b.keys()) if a[k] == b[k] and "cost" in a[k] and k[0] != pid)
    async with api(imported) as client:
        timeline = await get(client, f"/api/v1/models/{pid}/{mid}/prices")
        assert timeline == {
            "data": [
                {"from": "2026-03-01T00:00:00Z", "to": "2026-07-02T00:00:00Z", "cost": a[(pid, mid)]["cost"]},
                {"from": "2026-07-02T00:00:00Z", "to": None, "cost": b[(pid, mid)]["cost"]},
            ],
            "total": 2,
            "next_cursor": None,
        }
        steady = await get(client, f"/api/v1/models/{other[0]}/{other[1]}/prices")
        assert steady["data"] == [{"from": "2026-03-01T00:00:00Z", "to": None, "cost": a[other]["cost"]}]
        gone = next(k for k in sorted(a.keys() - b.keys()))
        left = await get(client, f"/api/v1/models/{gone[0]}/{gone[1]}/prices")
        assert left["data"] == [
            {"from": "2026-03-01T00:00:00Z", "to": "2026-07-02T00:00:00Z", "cost": a[gone].get("cost")}
        ]
        await get(client, f"/api/v1/models/{pid}/no-such-model/prices", 404)

        def estimate(cost: dict[str, Any]) -> float:
            return round((cost["input"] * 1_000_000 + cost["output"] * 2_000_000) / 1_000_000, 10)

        url = f"/api/v1/models/compare?ids={pid}/{mid},{other[0]}/{other[1]}&input_tokens=1000000&output_tokens=2000000"
        key = f"{pid}/{mid}"
        for at, cost in (
            ("2026-03-01", a[(pid, mid)]["cost"]),
            ("2026-07-01T23:59:59Z", a[(pid, mid)]["cost"]),
            ("2026-07-02T00:00:00Z", b[(pid, mid)]["cost"]),
            ("2026-09-01", b[(pid, mid)]["cost"]),
        ):
            body = await get(client, f"{url}&at={at}")
            assert body["cost_estimates"][key] == pytest.approx(estimate(cost)), at
            assert body["data"][0]["cost"] == cost
        assert (await get(client, url))["cost_estimates"][key] == pytest.approx(estimate(b[(pid, mid)]["cost"]))
        await get(client, f"{url}&at=2026-02-01", 404)


async def test_one_model_at_an_instant(imported: Settings) -> None:
    a, b = flat_models(OLD_DOC), flat_models(NEW_DOC)
    pid, mid = _changed_price(a, b)
    gone = next(k for k in sorted(a.keys() - b.keys()))
    new = next(k for k in sorted(b.keys() - a.keys()))
    async with api(imported) as client:
        then = await get(client, f"/api/v1/models/{pid}/{mid}?at=2026-05-01")
        assert {k: v for k, v in then.items() if k in a[(pid, mid)] and k != "id"} == {
            k: v for k, v in a[(pid, mid)].items() if k != "id"
        }
        assert (then["first_seen_at"], then["updated_at"], then["removed_at"]) == (
            "2026-03-01T00:00:00.000000Z",
            "2026-03-01T00:00:00.000000Z",
            None,
        )
        now = await get(client, f"/api/v1/models/{pid}/{mid}")
        assert now["cost"] == b[(pid, mid)]["cost"]
        assert (now["first_seen_at"], now["updated_at"]) == (
            "2026-03-01T00:00:00.000000Z",
            "2026-07-02T00:00:00.000000Z",
        )
        assert (await get(client, f"/api/v1/models/{gone[0]}/{gone[1]}?at=2026-05-01"))["removed_at"] is None
        assert (await get(client, f"/api/v1/models/{gone[0]}/{gone[1]}"))["removed_at"] == "2026-07-02T00:00:00.000000Z"
        await get(client, f"/api/v1/models/{new[0]}/{new[1]}?at=2026-05-01", 404)
        await get(client, f"/api/v1/models/{pid}/{mid}?at=2026-02-28", 404)


LIST_QUERIES = [
    "limit=50",
    "provider=openai,anthropic&limit=500",
    "capability=tool_call&min_context=200000",
    "capability=vision,reasoning&sort=-context",
    "input_modalities=pdf&output_modalities=text",
    "status=deprecated",
    "status=active&family=gpt",
    "max_input_cost=1&sort=input_cost",
    "max_output_cost=2&capability=tool_call&sort=-output_cost",
    "min_output=64000&sort=name",
    "sort=-name",
    "sort=release_date",
    "released_after=2025-06-01&sort=-release_date",
    "released_before=2024-01-01",
    "q=claude",
    "q=gpt 4o",
    "q=sonn&sort=name",
    "include_removed=true&limit=500",
    "include_removed=true&sort=-input_cost",
]


async def _same_lists(past: Settings, at: str, then: Settings) -> None:
    """Each list of `past` at `at` is the list `then` answers now, page for page."""
    async with api(past) as old, api(then) as ref:
        for query in LIST_QUERIES:
            assert await get(old, f"/api/v1/models?{query}&at={at}") == await get(ref, f"/api/v1/models?{query}"), query
        for query in ("limit=250", "capability=tool_call&sort=-name&limit=200", "include_removed=true&limit=300"):
            assert await walk(old, f"/api/v1/models?{query}&at={at}") == await walk(ref, f"/api/v1/models?{query}")
        for path in ("/api/v1/models/capability/reasoning?sort=context", "/api/v1/providers/openai/models?limit=20"):
            assert await get(old, f"{path}&at={at}") == await get(ref, path), path
        ids = "openai/gpt-4o,anthropic/claude-sonnet-4-5,openrouter/openai/gpt-4o-mini"
        compare = f"/api/v1/models/compare?ids={ids}&input_tokens=5000&output_tokens=300"
        assert await get(old, f"{compare}&at={at}") == await get(ref, compare)


async def test_lists_at_an_instant_are_the_lists_of_that_catalog(imported: Settings, march_only: Settings) -> None:
    await _same_lists(imported, "2026-05-01", march_only)
    await _same_lists(imported, "2026-03-01T00:00:00Z", march_only)


async def test_removed_and_returning_models_at_an_instant(replayed: Settings, imported: Settings) -> None:
    """Between 07-02 and 08-01 the replayed catalog is the imported one now, removed models included."""
    await _same_lists(replayed, "2026-07-15", imported)
    a, b = flat_models(OLD_DOC), flat_models(NEW_DOC)
    back = next(k for k in sorted(a.keys() - b.keys()) if "cost" in a[k])
    added = next(k for k in sorted(b.keys() - a.keys()))
    async with api(replayed) as client:
        assert (await get(client, f"/api/v1/models/{back[0]}/{back[1]}/prices"))["data"] == [
            {"from": "2026-03-01T00:00:00Z", "to": "2026-07-02T00:00:00Z", "cost": a[back]["cost"]},
            {"from": "2026-08-01T00:00:00Z", "to": None, "cost": a[back]["cost"]},
        ]
        assert (await get(client, f"/api/v1/models/{added[0]}/{added[1]}/prices"))["data"] == [
            {"from": "2026-07-02T00:00:00Z", "to": "2026-08-01T00:00:00Z", "cost": b[added].get("cost")}
        ]
        during = await get(client, f"/api/v1/models/{back[0]}/{back[1]}?at=2026-07-15")
        assert during["removed_at"] == "2026-07-02T00:00:00.000000Z"
        assert await get(client, "/api.json?at=2026-07-15") == NEW_DOC
        assert await get(client, "/api.json") == OLD_DOC


@pytest.fixture
def march_then_open(template_db: str, catalogs: dict[str, Path]) -> Iterator[Settings]:
    """03-01 alone, for a test that imports 07-02 itself while a web app is open."""
    with imported_database(template_db, [str(catalogs[OLD])]) as settings:
        yield settings


async def test_an_instant_after_the_newest_change_follows_the_catalog(
    march_then_open: Settings, catalogs: dict[str, Path]
) -> None:
    """An instant after the newest change is the catalog as it is, until a newer version exists:
    from then on (and for good, so a web process remembers it) the catalog version it saw then.
    A past list's total is kept across catalog versions; the current one's is counted again."""
    query = "/api/v1/models?capability=tool_call&limit=5"
    async with api(march_then_open) as client:
        at = "2026-05-01"
        current = await client.get(f"/api.json?at={at}")
        assert current.headers["Cache-Control"] == "public, max-age=15"
        assert await current.json(content_type=None) == OLD_DOC
        assert not client.app[keys.INSTANTS].known  # nothing remembered: it may change
        old_list = await get(client, f"{query}&at={at}")
        march = int(current.headers["X-Catalog-Version"])

        await run_import(march_then_open, [str(catalogs[NEW])])
        for _ in range(2):  # the second from what the process remembers
            past = await client.get(f"/api.json?at={at}")
            assert past.headers["X-Catalog-Version"] == str(march) and "immutable" in past.headers["Cache-Control"]
            assert await past.json(content_type=None) == OLD_DOC
            assert await get(client, f"{query}&at={at}") == old_list
        assert client.app[keys.INSTANTS].get(datetime(2026, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)) is not None
        totals = client.app[keys.TOTALS]
        past_keys = [k for k in totals.past if k.endswith(f"@{march}")]
        assert past_keys and totals.past[past_keys[0]] == old_list["total"]
        client.app[keys.CACHE].version += 1  # a newer catalog version seen: the past total stays
        assert totals.get(past_keys[0]) == old_list["total"]
        assert (await get(client, f"{query}&at=2026-07-15"))["total"] == (await get(client, query))["total"]


async def test_a_ranked_search_at_an_instant_reads_its_matches_once(
    imported: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ranked search of a past catalog is never told its total (which would have it probe its rank
    tiers through indexes the catalog then does not have); one now, or sorted, is, once counted.
    (PostgreSQL's plan: the web process's in-memory search, which answers ranked searches of the
    current catalog without it, is off.)"""
    told: list[int | None] = []
    list_models = api_reads.list_models

    async def recording(conn: Queryable, q: ModelQuery, *, known_total: int | None = None) -> Any:
        told.append(known_total)
        return await list_models(conn, q, known_total=known_total)

    monkeypatch.setattr(api_reads, "list_models", recording)
    async with api(dataclasses.replace(imported, search_in_memory=False)) as client:
        pages = {}
        for query in ("q=gpt&at=2026-05-01", "q=gpt&sort=name&at=2026-05-01", "q=gpt"):
            told.clear()
            first = await get(client, f"/api/v1/models?{query}&limit=1")
            second = await get(client, f"/api/v1/models?{query}&limit=2")
            assert first["total"] == second["total"] > 0
            pages[query] = (list(told), second["total"])
    then = pages["q=gpt&at=2026-05-01"][1]
    assert pages["q=gpt&at=2026-05-01"] == ([None, None], then)  # counted by the ranked search, but not told
    assert pages["q=gpt&sort=name&at=2026-05-01"] == ([then, then], then)  # the same filter: its total kept
    now = pages["q=gpt"][1]
    assert pages["q=gpt"] == ([None, now], now)


async def test_bad_and_future_instants(imported: Settings) -> None:
    async with api(imported) as client:
        routes = [
            "/api.json?",
            "/api/v1/models?",
            "/api/v1/models/openai/gpt-4o?",
            "/api/v1/models/compare?ids=openai/gpt-4o,openai/o3&",
        ]
        for bad in (
            "yesterday",
            "",
            "2026-3-1",
            "2026-02-30",
            "2026-03-01T25:00:00Z",
            "2026-03-01T10:00:00",
            "2026-03-01T10:00Z",
        ):
            for route in routes:
                resp = await client.get(f"{route}at={bad}")
                assert resp.status == 400, (route, bad)
                assert resp.content_type == "application/problem+json"
                body = await resp.json(content_type=None)
                assert [p["name"] for p in body["invalid_params"]] == ["at"], body
        # Other parameters are still checked.
        body = await get(client, "/api/v1/models?at=2026-05-01&limit=0", 400)
        assert [p["name"] for p in body["invalid_params"]] == ["limit"]
        await get(client, "/api/v1/models/openai/gpt-4o?at=2026-05-01&colour=red", 400)
        # The future answers as now: the same body, version and caching.
        for route in routes:
            now = await client.get(route.rstrip("?&"))
            for future in (
                "2999-01-01",
                "2999-01-01T00:00:00Z",
                "2999-01-01T00:00:00%2B05:00",
                "2999-01-01T00:00:00+05:00",
            ):
                then = await client.get(f"{route}at={future}")
                assert then.status == now.status == 200, (route, future)
                assert await then.read() == await now.read()
                for header in ("X-Catalog-Version", "ETag", "Cache-Control"):
                    assert then.headers[header] == now.headers[header], (route, header)
        # An offset: 2026-07-02T01:00:00+02:00 is 2026-07-01T23:00:00Z, before the second document.
        assert await get(client, "/api.json?at=2026-07-02T01:00:00%2B02:00") == OLD_DOC
        assert await get(client, "/api.json?at=2026-07-01T23:00:00-02:00") == NEW_DOC
