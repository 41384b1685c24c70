"""The webhook admin routes: subscriptions, the secret shown once and rotated with an overlap, a
test event, the delivery log, replay; auth, bad input, refused targets; no secret in any log."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import standardwebhooks
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from services.api.handlers.webhooks import SEND
from services.api.main import create_app
from shared.config import Settings
from tests.integration.webhook_helpers import receiver, sent_ids, stub_broker
from tests.support import pipeline, refresh_inline

ADMIN = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    relaxed = dataclasses.replace(settings, webhook_allow_private=True)
    app = create_app(relaxed, enqueue=lambda run_id: None)
    sent: list[int] = []
    app[SEND] = sent.append
    async with TestClient(TestServer(app)) as c:
        c.sent = sent  # type: ignore[attr-defined]
        yield c


async def call(client: TestClient, method: str, url: str, status: int, **kw: Any) -> Any:  # type: ignore[type-arg]
    resp = await client.request(method, url, headers={**ADMIN, **kw.pop("headers", {})}, **kw)
    text = await resp.text()
    assert resp.status == status, (method, url, resp.status, text)
    if status >= 400:
        assert resp.content_type == "application/problem+json"
    return await resp.json(content_type=None) if text else None


async def test_subscription_lifecycle(client: TestClient) -> None:  # type: ignore[type-arg]
    with capture_logs() as logs:
        async with receiver() as r:
            created = await call(
                client,
                "POST",
                "/api/v1/webhooks",
                201,
                json={"url": r.url, "providers": ["acme"], "kinds": ["updated"], "fields": ["cost.*"]},
            )
            secret = created["secret"]
            assert secret.startswith("whsec_")
            sub_id = created["id"]
            one = await call(client, "GET", f"/api/v1/webhooks/{sub_id}", 200)
            assert "secret" not in one
            assert one | {"secret": secret} == created
            assert (one["providers"], one["kinds"], one["fields"], one["status"]) == (
                ["acme"],
                ["updated"],
                ["cost.*"],
                "active",
            )
            listed = await call(client, "GET", "/api/v1/webhooks", 200)
            assert listed["total"] == 1 and "secret" not in listed["data"][0]

            test = await call(client, "POST", f"/api/v1/webhooks/{sub_id}/test", 200)
            assert (test["status"], test["attempts"], test["last_response_code"]) == ("delivered", 1, 200)
            event = standardwebhooks.Webhook(secret).verify(r.requests[0].body, r.requests[0].headers)
            assert event["type"] == "webhook.test"
            assert event["data"]["subscription_id"] == sub_id

            rotated = await call(client, "POST", f"/api/v1/webhooks/{sub_id}/rotate-secret", 200)
            assert rotated["secret"] != secret and rotated["previous_secret_expires_at"] is not None
            await call(client, "POST", f"/api/v1/webhooks/{sub_id}/test", 200)
            for s in (secret, rotated["secret"]):  # both sign during the overlap
                standardwebhooks.Webhook(s).verify(r.requests[1].body, r.requests[1].headers)

            log_page = await call(client, "GET", f"/api/v1/webhooks/{sub_id}/deliveries?limit=1", 200)
            assert log_page["total"] == 2 and len(log_page["data"]) == 1
            assert log_page["data"][0]["webhook_id"] == r.requests[1].webhook_id
            rest = await call(
                client, "GET", f"/api/v1/webhooks/{sub_id}/deliveries?cursor={log_page['next_cursor']}", 200
            )
            assert [d["webhook_id"] for d in rest["data"]] == [r.requests[0].webhook_id]
            assert (await call(client, "GET", f"/api/v1/webhooks/{sub_id}/deliveries?status=failed", 200))["total"] == 0

            await call(client, "DELETE", f"/api/v1/webhooks/{sub_id}", 204)
            await call(client, "GET", f"/api/v1/webhooks/{sub_id}", 404)
            await call(client, "DELETE", f"/api/v1/webhooks/{sub_id}", 404)
    text = repr(logs)
    assert secret not in text and rotated["secret"] not in text
    assert "test-admin-token" not in text


async def test_get_answers_etag_and_304(client: TestClient) -> None:  # type: ignore[type-arg]
    created = await call(client, "POST", "/api/v1/webhooks", 201, json={"url": "http://127.0.0.1:9/hook"})
    resp = await client.get(f"/api/v1/webhooks/{created['id']}", headers=ADMIN)
    etag = resp.headers["ETag"]
    assert resp.headers["Cache-Control"] == "no-store"
    again = await client.get(f"/api/v1/webhooks/{created['id']}", headers={**ADMIN, "If-None-Match": etag})
    assert again.status == 304


async def test_replay_and_enable(client: TestClient, settings: Settings) -> None:  # type: ignore[type-arg]
    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410)

    created = await call(client, "POST", "/api/v1/webhooks", 201, json={"url": "http://127.0.0.1:9/hook"})
    sub_id = created["id"]
    with stub_broker() as broker:
        async with pipeline(settings) as ctx:
            await refresh_inline(ctx)
        assert len(sent_ids(broker)) == 5  # the pipeline planned them; in this test nobody delivers them
    replayed = await call(client, "POST", f"/api/v1/webhooks/{sub_id}/replay", 202, json={"since_seq": 10})
    assert replayed == {
        "subscription_id": sub_id,
        "since_seq": 10,
        "through_seq": 28,
        "deliveries": 4,
    }  # seqs 11-28: 4 providers
    assert len(client.sent) == 4  # type: ignore[attr-defined]
    await call(client, "POST", f"/api/v1/webhooks/{sub_id}/replay", 400, json={"since_seq": -1})
    await call(client, "POST", "/api/v1/webhooks/999/replay", 404, json={"since_seq": 0})

    async with receiver(lambda nth, request: gone(request)) as r:
        other = await call(client, "POST", "/api/v1/webhooks", 201, json={"url": r.url})
        test = await call(client, "POST", f"/api/v1/webhooks/{other['id']}/test", 200)
        assert (test["status"], test["last_response_code"]) == ("failed", 410)
    disabled = await call(client, "GET", f"/api/v1/webhooks/{other['id']}", 200)
    assert disabled["status"] == "disabled" and "410" in disabled["disabled_reason"]
    await call(client, "POST", f"/api/v1/webhooks/{other['id']}/test", 400)
    await call(client, "POST", f"/api/v1/webhooks/{other['id']}/replay", 400, json={"since_seq": 0})
    enabled = await call(client, "POST", f"/api/v1/webhooks/{other['id']}/enable", 200)
    assert (enabled["status"], enabled["disabled_reason"]) == ("active", None)


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        ({}, "body"),
        ({"url": "http://127.0.0.1:9/", "color": "red"}, "body"),
        ({"url": "http://127.0.0.1:9/", "kinds": ["renamed"]}, "body"),
        ({"url": "http://127.0.0.1:9/", "providers": []}, "body"),
        ({"url": "http://127.0.0.1:9/", "fields": ["cost..input"]}, "body"),
        ({"url": "http://127.0.0.1:9/", "description": "a\u0000b"}, "body"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "http://user:pw@127.0.0.1:9/"}, "url"),
    ],
)
async def test_bad_bodies_are_problems(client: TestClient, body: Any, bad: str) -> None:  # type: ignore[type-arg]
    problem = await call(client, "POST", "/api/v1/webhooks", 400, json=body)
    assert problem["invalid_params"][0]["name"] == bad


async def test_routes_need_the_admin_token(client: TestClient) -> None:  # type: ignore[type-arg]
    routes = [
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/1"),
        ("DELETE", "/api/v1/webhooks/1"),
        ("POST", "/api/v1/webhooks/1/rotate-secret"),
        ("POST", "/api/v1/webhooks/1/test"),
        ("GET", "/api/v1/webhooks/1/deliveries"),
        ("POST", "/api/v1/webhooks/1/replay"),
        ("POST", "/api/v1/webhooks/1/enable"),
    ]
    for method, url in routes:
        assert (await client.request(method, url)).status == 401, url
        assert (await client.request(method, url, headers={"Authorization": "Bearer nope"})).status == 403, url
    await call(client, "GET", "/api/v1/webhooks/abc", 400)
    await call(client, "GET", "/api/v1/webhooks?limit=0", 400)
    await call(client, "GET", "/api/v1/webhooks?color=red", 400)
    await call(client, "POST", "/api/v1/webhooks/7/test", 404)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://localhost:8080/"],
)
async def test_private_targets_are_refused_without_webhook_allow_private(settings: Settings, url: str) -> None:
    app = create_app(settings, enqueue=lambda run_id: None)
    assert settings.webhook_allow_private is False
    async with TestClient(TestServer(app)) as c:
        problem = await call(c, "POST", "/api/v1/webhooks", 400, json={"url": url})
        assert problem["invalid_params"][0]["name"] == "url"
        assert any(w in problem["detail"] for w in ("loopback", "private", "link-local"))
        assert (await call(c, "GET", "/api/v1/webhooks", 200))["total"] == 0
