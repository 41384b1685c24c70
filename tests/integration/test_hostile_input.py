"""Hostile requests get a 4xx (or an honest empty answer), never a 5xx."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient

from shared.schemas.api import ModelListQuery
from tests.support import SAMPLE, flat_models, matches_search

SAMPLE_DOC = json.loads(SAMPLE.read_bytes())

NASTY = [
    "' OR 1=1 --",
    '"; DROP TABLE models; --',
    "%",
    "_",
    "\\",
    "$1",
    "1; SELECT pg_sleep(10)",
    "') UNION SELECT * FROM providers --",
    "\u0000",
    "\ud800",
    "ﬀ𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "a" * 2000,
    "-1",
    "1e999",
    "NaN",
    "[]",
    "{}",
]
LIST_PARAMS = [f.encode_name for f in msgspec.structs.fields(ModelListQuery)]
#: route -> (which of the sample's models it lists, the parameter its path fixes).
ROUTES: dict[str, tuple[Any, str | None]] = {
    "/api/v1/models": (lambda pid, m: True, None),
    "/api/v1/providers/acme/models": (lambda pid, m: pid == "acme", "provider"),
    "/api/v1/models/capability/vision": (lambda pid, m: "image" in m["modalities"]["input"], "capability"),
}


def expected_total(route: str, name: str, value: str) -> int:
    """What the sample holds for `route?name=value`, read from the JSON: a search matches by
    substring, provider and family only by an exact name; the route's own value wins over a parameter."""
    listed, fixed = ROUTES[route]
    values = [v.strip() for v in value.split(",")]

    def match(pid: str, mid: str, m: dict[str, Any]) -> bool:
        if name == fixed:
            return True
        if name == "q":
            return matches_search(SAMPLE_DOC, pid, mid, value)
        return (pid if name == "provider" else m.get("family")) in values

    return sum(1 for (pid, mid), m in flat_models(SAMPLE_DOC).items() if listed(pid, m) and match(pid, mid, m))


async def test_sql_metacharacters_in_every_parameter(client: TestClient) -> None:  # type: ignore[type-arg]
    non_empty = 0
    for route in ROUTES:
        for name in sorted(LIST_PARAMS):
            for value in NASTY:
                sent = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                resp = await client.get(route, params={name: sent})
                assert resp.status < 500, (route, name, value, await resp.text())
                if resp.status == 200 and name in ("q", "provider", "family"):
                    total = (await resp.json())["total"]
                    assert total == expected_total(route, name, sent), (route, name, value)
                    non_empty += total > 0
    assert non_empty > 3  # some of the values match something (a search for `$1` finds the models with a 1)
    for path in (
        "/api/v1/models/acme/' OR 1=1 --",
        "/api/v1/providers/'; DROP TABLE models",
        "/api/v1/refresh/1%00",
        "/api/v1/changes?since=' OR 1=1",
        "/api/v1/models/compare?ids=a/'%20OR%201=1,b/c",
    ):
        resp = await client.get(path)
        assert 400 <= resp.status < 500, (path, resp.status)


async def test_huge_query_strings_deep_cursors_and_bad_utf8(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/api/v1/models?q=" + "a" * 10_000)
    assert 400 <= resp.status < 500
    resp = await client.get("/api/v1/models?provider=" + ",".join(["x"] * 2000))
    assert resp.status == 200
    deep = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode().rstrip("=")
    resp = await client.get(f"/api/v1/models?cursor={deep[:7000]}")
    assert resp.status == 400
    resp = await client.get("/api/v1/models?cursor=" + "A" * 7000)
    assert resp.status == 400
    for raw in ("/api/v1/models?q=%FF%FE%FD", "/api/v1/models?provider=%C3%28", "/api/v1/models/%FF/%FE"):
        resp = await client.get(raw)
        assert resp.status < 500, raw
    deep_body = b"[" * 100_000 + b"]" * 100_000
    resp = await client.post("/api/v1/refresh", data=deep_body, headers={"Authorization": "Bearer test-admin-token"})
    assert resp.status == 400
    resp = await client.post("/api/v1/benchmarks", data=deep_body, headers={"Authorization": "Bearer test-admin-token"})
    assert resp.status == 400
    resp = await client.post(
        "/api/v1/refresh",
        data=io.BytesIO(b"x" * (9 * 1024 * 1024)),
        headers={"Authorization": "Bearer test-admin-token", "Content-Length": str(9 * 1024 * 1024)},
    )
    assert resp.status == 413
