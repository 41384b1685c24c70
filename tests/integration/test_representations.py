"""How answers are represented: content codings chosen from Accept-Encoding, one ETag per
representation, HEAD on every GET route, CORS, and models.dev's `provider=`/`type=` slices."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import brotli
import pytest
import zstandard
from aiohttp.test_utils import TestClient, TestServer

from services.api import keys
from services.api.main import create_app
from services.api.routes import ROUTES
from shared import events
from shared.config import Settings
from shared.db import api_reads
from shared.embedded import document
from shared.exports.model_schema import model_schema_json
from shared.exports.model_types import select
from tests.support import ADMIN, CATALOG_NEW, SAMPLE, fake_upstream, pipeline, refresh_inline

SAMPLE_DOC = json.loads(SAMPLE.read_bytes())
UNPACK = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}
#: A model of each type beside the untyped (chat) ones.
TYPED = {
    ("acme", "acme-image-1"): "image",
    ("acme", "acme-embed-small"): "embedding",
    ("acme", "acme-voice-1"): "speech",
    ("localai", "whisper-large-v3"): "transcription",
    ("acme", "acme-large-3"): "chat",
}


def typed_doc() -> dict[str, Any]:
    doc = json.loads(SAMPLE.read_bytes())
    for (pid, mid), kind in TYPED.items():
        doc[pid]["models"][mid]["type"] = kind
    return doc  # type: ignore[no-any-return]


@pytest.fixture
async def typed(settings: Settings, tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(typed_doc()))
    settings = dataclasses.replace(settings, modelsdev_url=f"file://{path}")
    async with pipeline(settings) as ctx:
        await refresh_inline(ctx)
    async with TestClient(TestServer(create_app(settings, enqueue=lambda _: None))) as c:
        yield c


async def fetch(client: TestClient, url: str, **headers: str) -> tuple[int, Any, bytes]:  # type: ignore[type-arg]
    headers.setdefault("Accept-Encoding", "identity")
    resp = await client.get(url, headers=headers, auto_decompress=False, allow_redirects=False)
    return resp.status, resp.headers, await resp.read()


@pytest.mark.parametrize("path", ["/api.json", "/api/v1/models?limit=500", "/exports/litellm.json"])
async def test_each_coding_is_the_identity_body_with_its_own_etag(client: TestClient, path: str) -> None:  # type: ignore[type-arg]
    status, headers, identity = await fetch(client, path, **{"Accept-Encoding": "identity"})
    assert status == 200 and "Content-Encoding" not in headers and len(identity) > 1024
    assert headers["Vary"] == "Accept-Encoding" and headers["Access-Control-Allow-Origin"] == "*"
    etags = {headers["ETag"]}
    for coding in ("gzip", "br", "zstd"):
        status, h, body = await fetch(client, path, **{"Accept-Encoding": f"{coding}, identity;q=0.5"})
        assert status == 200 and h["Content-Encoding"] == coding, (path, coding)
        assert UNPACK[coding](body) == identity
        assert len(body) < len(identity) and int(h["Content-Length"]) == len(body)
        assert h["Vary"] == "Accept-Encoding" and re.fullmatch(r'"[0-9a-f]+-' + coding + '"', h["ETag"])
        etags.add(h["ETag"])
        # The same representation again: the same bytes; 304 for its own ETag, not another's.
        assert (await fetch(client, path, **{"Accept-Encoding": coding}))[2] == body
        again = await fetch(client, path, **{"Accept-Encoding": coding, "If-None-Match": h["ETag"]})
        assert again[0] == 304 and again[1]["ETag"] == h["ETag"] and again[2] == b""
        other = await fetch(client, path, **{"Accept-Encoding": coding, "If-None-Match": headers["ETag"]})
        assert other[0] == 200
    assert len(etags) == 4
    same = await fetch(client, path, **{"If-None-Match": headers["ETag"], "Accept-Encoding": "identity"})
    assert same[0] == 304


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        ("gzip;q=0, br;q=0, zstd;q=0", None),
        ("gzip;q=nonsense", None),
        ("br;q=0.2, gzip;q=0.9", "gzip"),
        ("*", "br"),
        ("compress", None),
    ],
)
async def test_negotiation(client: TestClient, header: str, coding: str | None) -> None:  # type: ignore[type-arg]
    status, headers, _ = await fetch(client, "/api.json", **{"Accept-Encoding": header})
    assert status == 200 and headers.get("Content-Encoding") == coding


async def test_a_small_answer_is_not_compressed(client: TestClient) -> None:  # type: ignore[type-arg]
    status, headers, body = await fetch(client, "/api/v1/models?limit=1&provider=nobody", **{"Accept-Encoding": "gzip"})
    assert status == 200 and len(body) <= 1024 and "Content-Encoding" not in headers
    assert headers["Vary"] == "Accept-Encoding"


def _sample_path(path: str, run_id: int) -> str:
    values = {
        "provider_id": "acme",
        "model_id": "acme-large-3",
        "capability": "tool_call",
        "run_id": str(run_id),
        "id": "1",
        "lab": "acme",
    }
    return re.sub(r"\{(\w+)(?::[^}]+)?\}", lambda m: values[m.group(1)], path)


async def test_head_answers_the_headers_of_get_on_every_get_route(client: TestClient) -> None:  # type: ignore[type-arg]
    gets = [r for r in ROUTES if r.method == "GET"]
    assert len(gets) >= 20
    for route in gets:
        url = _sample_path(route.path, 1)
        if route.path.endswith("/compare"):
            url += "?ids=acme/acme-large-3,acme/acme-large-2"
        for coding in ("identity", "gzip"):
            extra = {"Accept-Encoding": coding, **(ADMIN if route.admin else {})}
            got = await client.get(url, headers=extra, auto_decompress=False, allow_redirects=False)
            streamed = got.content_type == "text/event-stream"
            if streamed:  # a stream never ends: its headers are enough (sent chunked, which HEAD need not say)
                got.close()
                body = b""
            else:
                body = await got.read()
            head = await client.head(url, headers=extra, allow_redirects=False)
            assert head.status == got.status, (url, head.status, got.status, body[:200])
            assert await head.read() == b""
            # A redirect's empty body and the metrics' changing one: their lengths may differ.
            ignored = {"Date", "X-Request-ID"} | ({"Content-Length"} if route.path == "/metrics" or not body else set())
            ignored |= {"Transfer-Encoding"} if streamed else set()
            same = {k: v for k, v in got.headers.items() if k not in ignored}
            assert {k: v for k, v in head.headers.items() if k not in ignored} == same, url
            assert head.headers["Access-Control-Allow-Origin"] == "*", url


async def test_cors_on_errors_too(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/api/v1/models?limit=0")
    assert resp.status == 400 and resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = await client.get("/api/v1/providers/nobody")
    assert resp.status == 404 and resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_the_export_is_compact(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/api.json", "/api.json?type=all", "/exports/litellm.json"):
        _, _, body = await fetch(client, path)
        assert b'", "' not in body and b'": ' not in body and b", " not in body.replace(b'\\"', b""), path
    assert json.loads((await fetch(client, "/api.json"))[2]) == select(SAMPLE_DOC)


async def test_provider_and_type_slices(typed: TestClient) -> None:  # type: ignore[type-arg]
    doc = typed_doc()

    async def get(url: str) -> Any:
        status, _, body = await fetch(typed, url)
        assert status == 200, (url, body[:300])
        return json.loads(body)

    chat = await get("/api.json")
    assert chat == select(doc) and "acme-image-1" not in chat["acme"]["models"]
    assert "acme-large-3" in chat["acme"]["models"] and "acme-large-2" in chat["acme"]["models"]
    assert await get("/api.json?type=all") == doc
    assert await get("/api.json?type=chat,all") == doc
    assert await get("/api.json?type=embedding,image") == select(doc, types=["embedding", "image"])
    assert await get("/api.json?provider=acme,localai&type=transcription") == select(
        doc, providers=["acme", "localai"], types=["transcription"]
    )
    assert await get("/api.json?provider=nobody") == {}
    assert await get("/api.json?provider=acme&ref=opencode&v=2") == select(doc, providers=["acme"])
    # The schema follows the same default and slices.
    assert (await fetch(typed, "/model-schema.json"))[2] == model_schema_json(doc)
    ids = (await get("/model-schema.json?type=all"))["$defs"]["Model"]["enum"]
    assert "acme/acme-image-1" in ids and len(ids) == sum(len(p["models"]) for p in doc.values())
    # LiteLLM prices every type unless asked.
    cost_map = await get("/exports/litellm.json")
    assert cost_map["acme/acme-embed-small"]["mode"] == "embedding"
    assert set(await get("/exports/litellm.json?type=chat")) == {
        f"{p}/{m}" for p, v in select(doc).items() for m in v["models"]
    }


async def test_an_unknown_type_is_a_400_listing_the_allowed_ones(typed: TestClient) -> None:  # type: ignore[type-arg]
    for url in ("/api.json?type=chat,nonsense", "/api/v1/models?type=llm", "/model-schema.json?type=x"):
        resp = await typed.get(url)
        assert resp.status == 400, url
        problem = await resp.json(content_type=None)
        (param,) = problem["invalid_params"]
        assert param["name"] == "type"
        for allowed in ("all", "chat", "image", "embedding", "reranking", "transcription", "speech", "realtime"):
            assert allowed in param["reason"], param


async def test_type_filters_model_lists(typed: TestClient) -> None:  # type: ignore[type-arg]
    async def ids(url: str) -> set[str]:
        status, _, body = await fetch(typed, url)
        assert status == 200, body[:300]
        return {m["id"] for m in json.loads(body)["data"]}

    every = await ids("/api/v1/models?limit=500")
    assert every == await ids("/api/v1/models?limit=500&type=all")
    typed_ids = {f"{p}/{m}" for (p, m), kind in TYPED.items() if kind != "chat"}
    assert await ids("/api/v1/models?limit=500&type=chat") == every - typed_ids
    assert await ids("/api/v1/models?limit=500&type=image,embedding") == {"acme/acme-image-1", "acme/acme-embed-small"}
    assert await ids("/api/v1/providers/acme/models?type=speech") == {"acme/acme-voice-1"}
    assert await ids("/api/v1/models/capability/tool_call?type=transcription&limit=500") <= {"localai/whisper-large-v3"}
    page = json.loads((await fetch(typed, "/api/v1/models?type=embedding"))[2])
    assert page["total"] == 1


async def test_the_documents_are_built_once_for_many_concurrent_requests(
    typed: TestClient,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.db import api_reads

    calls: list[Any] = []
    real = api_reads.catalog_document

    async def counting(conn: Any, **kw: Any) -> str:
        calls.append(kw)
        await asyncio.sleep(0.05)
        return await real(conn, **kw)

    monkeypatch.setattr(api_reads, "catalog_document", counting)
    typed.server.app[keys.CACHE].clear("test")  # type: ignore[union-attr]
    answers = await asyncio.gather(*(fetch(typed, "/api.json", **{"Accept-Encoding": "br"}) for _ in range(50)))
    assert {a[0] for a in answers} == {200} and len({a[2] for a in answers}) == 1
    assert len(calls) == 1
    await asyncio.gather(*(fetch(typed, f"/api.json?provider=acme&x={n}") for n in range(10)))
    assert len(calls) == 2  # other parameters do not make another slice


async def test_a_document_over_the_entry_share_is_built_once_and_kept_compressed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/api.json over a quarter of CACHE_MAX_BYTES (as at 100,000 models: 50 MB of 128 MB) is built
    once per catalog version, however many ask and in whichever coding, and kept compressed only."""
    body = document(CATALOG_NEW)
    async with fake_upstream(body) as up, pipeline(settings, modelsdev_url=up.url) as ctx:
        await refresh_inline(ctx)
    builds = 0
    assemble = api_reads.catalog_document

    async def counted(*args: Any, **kwargs: Any) -> str:
        nonlocal builds
        builds += 1
        return await assemble(*args, **kwargs)

    monkeypatch.setattr(api_reads, "catalog_document", counted)
    budget = len(body)  # the document (2.4 MB) is over the quarter of it an entry may take
    app = create_app(dataclasses.replace(settings, cache_max_bytes=budget), enqueue=lambda _: None)
    async with TestClient(TestServer(app)) as client:
        # The listener clears the cache once it has subscribed: wait for that first.
        channel = events.channel(settings.redis_prefix)
        for _ in range(200):
            if dict(await app[keys.REDIS].pubsub_numsub(channel)).get(channel.encode()):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)

        async def fetch(coding: str) -> tuple[bytes, str]:
            r = await client.get("/api.json", headers={"Accept-Encoding": coding}, auto_decompress=False)
            assert r.status == 200 and r.headers.get("Content-Encoding", "identity") == coding
            raw = await r.read()
            return (raw if coding == "identity" else UNPACK[coding](raw)), r.headers["ETag"]

        first = await asyncio.gather(*(fetch(c) for c in ("identity", "zstd", "identity", "gzip")))
        later = [await fetch(c) for c in ("identity", "br", "zstd", "gzip", "identity")]
        assert builds == 1
        want = json.loads(body)
        assert all(json.loads(b) == want for b, _ in first + later)
        assert len({b for b, _ in first + later}) == 1  # the same bytes in every coding
        etags = {
            c: {
                e
                for (_, e), cc in zip(
                    first + later,
                    ("identity", "zstd", "identity", "gzip", "identity", "br", "zstd", "gzip", "identity"),
                    strict=True,
                )
                if cc == c
            }
            for c in ("identity", "br", "zstd", "gzip")
        }
        assert all(len(e) == 1 for e in etags.values()) and len(set.union(*etags.values())) == 4
        r = await client.get(
            "/api.json", headers={"Accept-Encoding": "identity", "If-None-Match": etags["identity"].pop()}
        )
        assert r.status == 304
        cache = app[keys.CACHE]
        entry = cache.lookup("/api.json")
        assert entry is not None and "identity" not in entry.reps
        assert cache.bytes <= cache.max_bytes and entry.size < len(first[0][0]) // 4
        assert builds == 1
