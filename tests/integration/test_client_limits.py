"""Per-client limits of the web API (API_RATE_LIMIT) on a real Redis: 429 past the budget, one
budget per client, X-Forwarded-For believed only from a trusted proxy, exempt routes, the
documents' own budget, and a Redis that is down."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from services.api.main import create_app
from services.api.ratelimit import LIMITS
from shared.config import RateLimit, Settings
from tests.support import ADMIN, free_port, pipeline, refresh_inline

PER_MINUTE = RateLimit(60, 60.0)
PROXY = (ipaddress.ip_network("127.0.0.1/32"),)


@asynccontextmanager
async def api(settings: Settings, **overrides: Any) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """The sample catalog behind an app with these settings (the test client's peer is 127.0.0.1)."""
    async with pipeline(settings) as ctx:
        await refresh_inline(ctx)
    app = create_app(dataclasses.replace(settings, **overrides), enqueue=lambda run_id: None)
    async with TestClient(TestServer(app)) as client:
        yield client


def as_client(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": f"203.0.113.250, {address}"}


async def test_the_61st_request_of_a_minute_is_refused_and_another_client_is_not(settings: Settings) -> None:
    async with api(settings, api_rate_limit=PER_MINUTE, trusted_proxies=PROXY) as client:
        for i in range(60):
            r = await client.get("/api/v1/models?limit=1", headers=as_client("198.51.100.1"))
            assert r.status == 200, await r.text()
            assert r.headers["RateLimit-Limit"] == "60"
            assert r.headers["RateLimit-Remaining"] == str(59 - i)
            assert r.headers["RateLimit-Policy"] == "60;w=60"
            assert 1 <= int(r.headers["RateLimit-Reset"]) <= 61
        refused = await client.get("/api/v1/models/openai/gpt-4o", headers=as_client("198.51.100.1"))
        assert refused.status == 429
        assert refused.content_type == "application/problem+json"
        body = await refused.json(content_type=None)
        assert body["status"] == 429 and body["title"] == "Too Many Requests" and body["request_id"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 61
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert refused.headers["RateLimit-Reset"] == refused.headers["Retry-After"]
        # refused again without asking Redis: the process remembers until the window frees a slot
        limiter = client.app[LIMITS].api.limiter  # type: ignore[union-attr]
        take, limiter.take = limiter.take, None  # type: ignore[assignment,method-assign]
        again = await client.get("/api/v1/providers", headers=as_client("198.51.100.1"))
        assert again.status == 429 and 1 <= int(again.headers["Retry-After"]) <= 61
        limiter.take = take  # type: ignore[method-assign]
        other = await client.get("/api/v1/models?limit=1", headers=as_client("198.51.100.2"))
        assert other.status == 200 and other.headers["RateLimit-Remaining"] == "59"
        # the address a client writes itself (left of what the proxy appended) is not believed
        spoofed = await client.get("/api/v1/models?limit=1", headers={"X-Forwarded-For": "198.51.100.9, 198.51.100.1"})
        assert spoofed.status == 429
        metrics = (await (await client.get("/metrics")).read()).decode()
        assert 'modelmeta_http_limited_total{limit="api",route="/api/v1/models/{provider_id}/{model_id}"}' in metrics


async def test_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(settings: Settings) -> None:
    async with api(settings, api_rate_limit=RateLimit(5, 60.0)) as client:
        for i in range(5):
            r = await client.get("/api/v1/providers", headers=as_client(f"198.51.100.{i}"))
            assert r.status == 200, await r.text()
        r = await client.get("/api/v1/providers", headers=as_client("198.51.100.77"))
        assert r.status == 429, "a peer that is no trusted proxy cannot pick its budget with X-Forwarded-For"


async def test_probes_metrics_and_admin_routes_are_never_limited(settings: Settings) -> None:
    async with api(settings, api_rate_limit=RateLimit(2, 60.0)) as client:
        for _ in range(3):
            await client.get("/api/v1/providers")
        assert (await client.get("/api/v1/providers")).status == 429
        for _ in range(10):
            for path in ("/healthz", "/readyz", "/metrics"):
                r = await client.get(path)
                assert r.status == 200, (path, await r.text())
                assert "RateLimit-Limit" not in r.headers
        posted = await client.post("/api/v1/refresh", headers=ADMIN, json={})
        assert posted.status == 202, await posted.text()
        assert "RateLimit-Limit" not in posted.headers


async def test_whole_catalog_documents_have_their_own_lower_budget(settings: Settings) -> None:
    docs = RateLimit(2, 60.0)
    async with api(settings, api_rate_limit=PER_MINUTE, api_document_rate_limit=docs) as client:
        for path in ("/api.json", "/exports/litellm.json"):
            r = await client.get(path)
            assert r.status == 200 and r.headers["RateLimit-Limit"] == "2"
        assert (await client.get("/model-schema.json")).status == 429
        r = await client.get("/api/v1/models?limit=1")
        assert r.status == 200 and r.headers["RateLimit-Remaining"] == "59", "documents do not use the API budget"


async def test_errors_of_a_limited_route_carry_the_headers_too(settings: Settings) -> None:
    async with api(settings, api_rate_limit=PER_MINUTE) as client:
        r = await client.get("/api/v1/models?limit=0")
        assert r.status == 400 and r.headers["RateLimit-Remaining"] == "59"
        r = await client.get("/no/such/path")
        assert r.status == 404 and r.headers["RateLimit-Remaining"] == "58"


async def test_without_the_setting_nothing_is_limited_or_asked(settings: Settings) -> None:
    async with api(settings) as client:
        assert LIMITS not in client.app
        for _ in range(70):
            r = await client.get("/healthz")
        r = await client.get("/api/v1/providers")
        assert r.status == 200 and "RateLimit-Limit" not in r.headers


async def test_a_redis_that_is_down_fails_open(settings: Settings) -> None:
    before = REGISTRY.get_sample_value("modelmeta_http_limiter_unavailable_total") or 0.0
    down = f"redis://127.0.0.1:{free_port()}/0"
    async with api(settings, api_rate_limit=RateLimit(1, 60.0), redis_url=down) as client:
        for _ in range(5):
            r = await client.get("/api/v1/models?limit=1")
            assert r.status == 200, await r.text()
            assert "RateLimit-Limit" not in r.headers
    assert (REGISTRY.get_sample_value("modelmeta_http_limiter_unavailable_total") or 0.0) - before >= 5
