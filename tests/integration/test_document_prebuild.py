"""Whole-catalog documents built again after a change, ahead of the request (services/api/prebuild.py),
in the app against real PostgreSQL and Redis: changes arrive as the workers announce them (a real
refresh, or a version bumped in PostgreSQL and published on the invalidation channel), and the
app's own listener applies them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from services.api import keys
from services.api.cache import Entry
from services.api.main import create_app
from shared import events
from shared.config import Settings
from shared.db import api_reads
from shared.db.catalog_writes import catalog_version
from tests.support import SAMPLE, fake_upstream, pipeline, refresh_inline, wait_until

SAMPLE_DOC = json.loads(SAMPLE.read_bytes())
DEBOUNCE = 0.3


class Builds:
    """Counts the whole-catalog document reads (one per build), optionally slow or failing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.delay = 0.0
        self.fail = False
        real = api_reads.catalog_document

        async def counting(pool: Any, **kw: Any) -> str:
            self.calls.append(tuple(sorted(kw.items())))
            await asyncio.sleep(self.delay)
            if self.fail:
                raise RuntimeError("the catalog is unreadable on purpose")
            return await real(pool, **kw)

        monkeypatch.setattr(api_reads, "catalog_document", counting)

    def __len__(self) -> int:
        return len(self.calls)


async def ready(client: TestClient) -> web.Application:  # type: ignore[type-arg]
    """The app once its listener has subscribed (subscribing clears the cache), its debounce short."""
    app = client.server.app  # type: ignore[union-attr]
    channel = events.channel(app[keys.SETTINGS].redis_prefix)
    await wait_until(lambda: _subscribed(app, channel), 5, 0.01, "the invalidation listener subscribed")
    await asyncio.sleep(0.05)
    app[keys.PREBUILDER].debounce = DEBOUNCE
    return app


async def _subscribed(app: web.Application, channel: str) -> bool:
    return bool(dict(await app[keys.REDIS].pubsub_numsub(channel)).get(channel.encode()))


async def change(app: web.Application, providers: tuple[str, ...] = ("acme",)) -> int:
    """A new catalog version as a worker makes one: bumped in PostgreSQL, then announced."""
    version = int(await app[keys.POOL].fetchval("UPDATE catalog_state SET version = version + 1 RETURNING version"))
    event = events.Invalidation(version=version, providers=list(providers))
    await events.publish(app[keys.REDIS], app[keys.SETTINGS].redis_prefix, event)
    await wait_until(lambda: app[keys.CACHE].version >= version, 5, 0.005, f"version {version} heard")
    return version


def held(app: web.Application, path: str) -> Entry | None:
    """The entry of a document (by its cache key, not a request's alias) for the current version."""
    cache = app[keys.CACHE]
    for key, entry in cache.entries.items():
        if key.startswith(path + "?") and entry.version == cache.version:
            return entry
    return None


async def get(client: TestClient, url: str) -> tuple[Any, int]:  # type: ignore[type-arg]
    resp = await client.get(url)
    assert resp.status == 200, (url, resp.status, await resp.text())
    return await resp.json(content_type=None), int(resp.headers["X-Catalog-Version"])


@pytest.fixture
async def app(client: TestClient) -> web.Application:  # type: ignore[type-arg]
    return await ready(client)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    return Builds(monkeypatch)


async def test_a_document_asked_for_is_built_again_after_a_refresh_without_a_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads(SAMPLE.read_bytes())
    async with fake_upstream(json.dumps(doc).encode()) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
        async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as client:
            app = await ready(client)
            builds = Builds(monkeypatch)
            assert (await get(client, "/api.json"))[0] == doc
            assert len(builds) == 1
            first = held(app, "/api.json")
            assert first is not None and len(first.reps) == 2  # identity and the coding the client accepts
            doc["acme"]["models"]["acme-large-3"]["cost"]["input"] = 1.1
            up.body = json.dumps(doc).encode()
            assert (await refresh_inline(ctx))["status"] == "succeeded"
            version = await catalog_version(app[keys.POOL])
            entry = await wait_until(lambda: held(app, "/api.json"), 10, what="/api.json built again")
            assert entry.version == version == app[keys.CACHE].version
            assert set(entry.reps) == set(first.reps)  # compressed as the requests before had it
            assert len(builds) == 2  # once for the request, once after the refresh: no request
            assert await get(client, "/api.json") == (doc, version)  # the new catalog, found built
            assert len(builds) == 2
            # Documents nobody asked for are not built.
            assert held(app, "/model-schema.json") is None and held(app, "/exports/litellm.json") is None


async def test_a_burst_of_changes_leads_to_one_rebuild_of_each_document(
    app: web.Application,
    client: TestClient,  # type: ignore[type-arg]
    builds: Builds,
) -> None:
    debounce = app[keys.PREBUILDER].debounce = 1.0  # room for a loaded machine between the changes
    await get(client, "/api.json")
    await get(client, "/exports/litellm.json?provider=acme")
    assert len(builds) == 2
    for i in range(20):  # a refresh committing provider after provider, each sooner than the debounce
        await change(app, ("acme",) if i % 2 else ("gemstone",))
        await asyncio.sleep(0.03)
    await wait_until(lambda: held(app, "/api.json") and held(app, "/exports/litellm.json"), 10, what="both built")
    await asyncio.sleep(debounce * 2)
    assert len(builds) == 4, builds.calls  # one each after the burst, however many versions it made
    assert held(app, "/model-schema.json") is None
    await get(client, "/api.json")
    await get(client, "/exports/litellm.json?provider=acme")
    assert len(builds) == 4  # found built
    # A change to a provider outside a slice does not drop it, nor build it again.
    await change(app, ("gemstone",))
    await wait_until(lambda: held(app, "/api.json"), 10, what="/api.json built again")
    await asyncio.sleep(debounce * 2)
    assert len(builds) == 5
    assert "/exports/litellm.json?provider=acme&type=all" in app[keys.CACHE].entries  # kept from the burst


async def test_a_request_during_the_rebuild_waits_for_it(
    app: web.Application,
    client: TestClient,  # type: ignore[type-arg]
    builds: Builds,
) -> None:
    await get(client, "/api.json")
    builds.delay = 1.0
    version = await change(app)
    await wait_until(lambda: len(builds) == 2, 5, 0.01, "the rebuild started")
    assert await get(client, "/api.json") == (SAMPLE_DOC, version)
    assert len(builds) == 2  # the request waited for the rebuild rather than build again
    await asyncio.sleep(DEBOUNCE * 3)
    assert len(builds) == 2


async def test_a_request_before_the_debounce_ends_builds_it_and_the_rebuild_keeps_that(
    app: web.Application,
    client: TestClient,  # type: ignore[type-arg]
    builds: Builds,
) -> None:
    await get(client, "/api.json")
    app[keys.PREBUILDER].debounce = 2.0
    version = await change(app)
    assert await get(client, "/api.json") == (SAMPLE_DOC, version)
    assert len(builds) == 2
    await asyncio.sleep(3.0)
    assert len(builds) == 2  # at most one build per version


async def test_a_document_nobody_read_since_its_rebuild_is_not_built_again(
    app: web.Application,
    client: TestClient,  # type: ignore[type-arg]
    builds: Builds,
) -> None:
    await get(client, "/api.json")
    await change(app)
    await wait_until(lambda: held(app, "/api.json"), 10, what="/api.json built again")
    assert len(builds) == 2
    await change(app)  # nobody read that build: this change leaves it to the next request
    await asyncio.sleep(DEBOUNCE * 3)
    assert len(builds) == 2 and held(app, "/api.json") is None
    version = await change(app)
    assert await get(client, "/api.json") == (SAMPLE_DOC, version)  # read again: built again next time
    await change(app)
    await wait_until(lambda: held(app, "/api.json"), 10, what="/api.json built again")
    assert len(builds) == 4


async def test_a_document_evicted_for_space_is_not_built_again(
    app: web.Application,
    client: TestClient,  # type: ignore[type-arg]
    builds: Builds,
) -> None:
    await get(client, "/api.json")
    cache = app[keys.CACHE]
    bound, cache.max_bytes = cache.max_bytes, 1
    await get(client, "/api/v1/providers")  # stored, and everything evicted to keep within 1 byte
    cache.max_bytes = bound
    assert not cache.entries
    await change(app)
    await asyncio.sleep(DEBOUNCE * 3)
    assert len(builds) == 1


async def test_a_failing_rebuild_is_logged_and_later_requests_build_it(
    app: web.Application,
    client: TestClient,  # type: ignore[type-arg]
    builds: Builds,
) -> None:
    await get(client, "/api.json")
    builds.fail = True
    with capture_logs() as logs:
        await change(app)
        failed = await wait_until(
            lambda: [e for e in logs if e["event"] == "document_prebuild_failed"], 5, what="the failure logged"
        )
    assert failed[0]["key"].startswith("/api.json?") and "unreadable on purpose" in failed[0]["error"]
    assert len(builds) == 2 and held(app, "/api.json") is None
    builds.fail = False
    assert await get(client, "/api.json") == (SAMPLE_DOC, app[keys.CACHE].version)
    assert len(builds) == 3
    # The process goes on building after a change, as before.
    await change(app)
    await wait_until(lambda: held(app, "/api.json"), 10, what="/api.json built again")
    assert len(builds) == 4
