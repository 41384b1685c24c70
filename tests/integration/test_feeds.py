"""The change log as feeds: Atom 1.0 (feedparser and the feed rules: ids, updated, links) and
server-sent events (changes as they commit, resumed with Last-Event-ID without gap or repeat,
heartbeats, a clean end on shutdown)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from xml.etree import ElementTree as ET

import feedparser
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from services.api.handlers.feeds import HEARTBEAT_KEY
from services.api.main import create_app
from shared.config import Settings
from shared.embedded import document
from tests.support import SAMPLE, fake_upstream, pipeline, refresh_inline

A = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(settings, enqueue=lambda run_id: None)
    app[HEARTBEAT_KEY] = 0.3
    async with TestClient(TestServer(app)) as c:
        yield c


def check_atom(body: bytes, url: str) -> ET.Element:
    """The RFC 4287 rules a feed validator checks: ids, titles, updated times, links."""
    feed = ET.fromstring(body)
    assert feed.tag == f"{A}feed"
    for tag in ("id", "title", "updated"):
        assert len(feed.findall(f"{A}{tag}")) == 1, tag
    assert feed.find(f"{A}author/{A}name") is not None
    assert feed.findtext(f"{A}id", "").startswith("urn:uuid:")
    selfs = [link for link in feed.findall(f"{A}link") if link.get("rel") == "self"]
    assert [link.get("href") for link in selfs] == [url]
    ids = []
    for entry in feed.findall(f"{A}entry"):
        for tag in ("id", "title", "updated", "content"):
            assert len(entry.findall(f"{A}{tag}")) == 1, tag
        assert entry.findtext(f"{A}updated", "") <= feed.findtext(f"{A}updated", "")
        assert [x.get("rel") for x in entry.findall(f"{A}link")] == ["alternate"]
        ids.append(entry.findtext(f"{A}id"))
    assert len(set(ids)) == len(ids)
    assert all(i and i.startswith("urn:uuid:") for i in ids)
    return feed


async def _atom(client: TestClient, path: str, status: int = 200) -> Any:  # type: ignore[type-arg]
    resp = await client.get(path)
    body = await resp.read()
    assert resp.status == status, body
    if status != 200:
        return json.loads(body)
    assert resp.content_type == "application/atom+xml"
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.version == "atom10"
    check_atom(body, str(resp.url))
    return parsed


async def test_atom_feed_lists_the_changes(client: TestClient, settings: Settings) -> None:  # type: ignore[type-arg]
    sample = json.loads(SAMPLE.read_bytes())
    async with fake_upstream(SAMPLE.read_bytes()) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
        sample["acme"]["models"]["acme-large-3"]["cost"]["input"] = 2.5
        up.body = json.dumps(sample).encode()
        await refresh_inline(ctx)

    feed = await _atom(client, "/api/v1/changes.atom")
    assert len(feed.entries) == 29
    newest = feed.entries[0]
    assert newest.title == "acme/acme-large-3 updated: cost.input"
    assert "cost.input: 1.25 -> 2.5" in newest.content[0].value
    [model_link] = [link for link in newest.links if link.rel == "alternate"]
    assert model_link.href == str(client.make_url("/api/v1/models/acme/acme-large-3"))
    assert model_link.type == "application/json"
    assert {t.term for t in newest.tags} == {"updated", "acme"}
    assert feed.feed.updated == newest.updated
    again = await _atom(client, "/api/v1/changes.atom")
    assert [e.id for e in again.entries] == [e.id for e in feed.entries]

    assert len((await _atom(client, "/api/v1/changes.atom?provider=acme")).entries) == 8
    assert len((await _atom(client, "/api/v1/changes.atom?provider=acme&kind=added")).entries) == 7
    empty = await _atom(client, "/api/v1/changes.atom?kind=removed")
    assert empty.entries == [] and empty.feed.updated

    pages, url = [], "/api/v1/changes.atom?since=0&limit=10"
    while url:
        page = await _atom(client, url)
        pages.extend(page.entries)
        nxt = [link.href for link in page.feed.links if link.rel == "next"]
        url = nxt[0].split(str(client.make_url("")), 1)[-1] if nxt else ""
    assert len(pages) == 29
    assert [e.id for e in pages] == [e.id for e in reversed(feed.entries)]


async def test_atom_etag_and_bad_parameters(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/api/v1/changes.atom")
    assert resp.status == 200 and resp.headers["ETag"]
    again = await client.get("/api/v1/changes.atom", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    for bad in ("kind=renamed", "limit=0", "color=red", "since=yesterday"):
        problem = await _atom(client, f"/api/v1/changes.atom?{bad}", 400)
        assert problem["invalid_params"][0]["name"] == bad.split("=")[0]


# -- server-sent events ------------------------------------------------------------------------


class EventReader:
    """Parses a text/event-stream response as it arrives."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.events: list[tuple[int, dict[str, Any], float]] = []
        self.comments: list[str] = []
        self._id: int | None = None
        self._data: list[str] = []

    async def read_until(self, done: Any, within: float = 60.0) -> None:
        async with asyncio.timeout(within):
            while not done(self):
                line = await self.resp.content.readline()
                if not line:
                    return
                self._line(line.decode().rstrip("\n"))

    def _line(self, line: str) -> None:
        if line.startswith(":"):
            self.comments.append(line)
        elif line.startswith("id: "):
            self._id = int(line[4:])
        elif line.startswith("data: "):
            self._data.append(line[6:])
        elif line == "" and self._data:
            assert self._id is not None
            self.events.append((self._id, json.loads("\n".join(self._data)), time.monotonic()))
            self._id, self._data = None, []


async def test_stream_follows_a_refresh_and_resumes_without_gap_or_repeat(
    client: TestClient,  # type: ignore[type-arg]
    settings: Settings,
) -> None:
    async with (
        fake_upstream(document("api-2026-03-01"), etag='"v1"') as up,
        pipeline(settings, modelsdev_url=up.url) as ctx,
    ):
        await refresh_inline(ctx)
        before = await ctx.pool.fetchval("SELECT max(seq) FROM model_changes")
        with capture_logs() as logs:
            first = await client.get("/api/v1/changes/stream")
            assert first.headers["Content-Type"] == "text/event-stream"
            reader = EventReader(first)

            up.body, up.etag = document("api-2026-07-02"), '"v2"'
            refreshing = asyncio.create_task(refresh_inline(ctx))
            await reader.read_until(lambda r: len(r.events) >= 1000)
            assert not refreshing.done()  # events arrive as providers commit, not after the run
            first.close()

            last_id = reader.events[-1][0]
            second = await client.get("/api/v1/changes/stream", headers={"Last-Event-ID": str(last_id)})
            resumed = EventReader(second)
            run = await refreshing
            total = run["added"] + run["updated"] + run["removed"]
            await resumed.read_until(lambda r: len(reader.events) + len(r.events) >= total)
            await resumed.read_until(lambda r: len(r.comments) >= 1, 5)  # then a heartbeat while idle
            second.close()

        assert not [e for e in logs if e["log_level"] in ("error", "critical")]  # clients left: no error
        ids = [e[0] for e in reader.events + resumed.events]
        logged = [
            r["seq"] for r in await ctx.pool.fetch("SELECT seq FROM model_changes WHERE seq > $1 ORDER BY seq", before)
        ]
        assert ids == logged  # every change once, in order: no gap, no repeat
        assert all(e[1]["seq"] == e[0] for e in reader.events + resumed.events)
        assert resumed.comments and set(resumed.comments) == {": heartbeat"}

        # Filters, from a cursor: exactly that provider's removals.
        filtered = await client.get(f"/api/v1/changes/stream?since={before}&provider=anthropic&kind=removed")
        want = await ctx.pool.fetchval(
            "SELECT count(*) FROM model_changes WHERE seq > $1 AND provider_id = 'anthropic' AND kind = 'removed'",
            before,
        )
        fr = EventReader(filtered)
        await fr.read_until(lambda r: len(r.comments) >= 1, 10)
        filtered.close()
        assert len(fr.events) == want > 0
        assert {(e[1]["provider_id"], e[1]["kind"]) for e in fr.events} == {("anthropic", "removed")}


async def test_stream_ends_cleanly_on_shutdown(settings: Settings) -> None:
    app = create_app(settings, enqueue=lambda run_id: None)
    server = TestServer(app)
    async with TestClient(server) as c:
        resp = await c.get("/api/v1/changes/stream")
        assert resp.status == 200
        reading = asyncio.create_task(resp.content.read())
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await server.close()
        rest = await asyncio.wait_for(reading, 5)
        assert rest == b"retry: 3000\n\n"
        assert time.monotonic() - started < 3


async def test_stream_rejects_bad_parameters(client: TestClient) -> None:  # type: ignore[type-arg]
    for path, headers in (
        ("/api/v1/changes/stream?limit=5", {}),
        ("/api/v1/changes/stream?kind=renamed", {}),
        ("/api/v1/changes/stream", {"Last-Event-ID": "abc"}),
    ):
        resp = await client.get(path, headers=headers)
        assert resp.status == 400, path
        assert resp.content_type == "application/problem+json"


async def test_streams_are_bounded_per_client_and_per_process(settings: Settings) -> None:
    bounded = dataclasses.replace(settings, web_max_streams=2, web_max_streams_per_client=1)
    async with TestClient(TestServer(create_app(bounded, enqueue=lambda run_id: None))) as c:
        first = await c.get("/api/v1/changes/stream")
        assert first.status == 200
        second = await c.get("/api/v1/changes/stream")
        assert second.status == 429, await second.text()
        assert second.headers["Retry-After"] and second.content_type == "application/problem+json"
        first.close()
        # The slot is given back when its client leaves.
        for _ in range(50):
            again = await c.get("/api/v1/changes/stream")
            if again.status == 200:
                again.close()
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the stream's slot was never given back")
