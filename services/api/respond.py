"""Answers: JSON bodies, pages, and cache entries served with ETag, 304 and version headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from services.api.cache import Entry

_encoder = msgspec.json.Encoder()
CACHED_FOR = "public, max-age=15"


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


@dataclass(frozen=True, slots=True)
class Cached:
    """What a cached route answers on a miss: the providers its body depends on ("*" for any),
    how to build the body, and the cache key when the path and the decoded query are not it."""

    tags: frozenset[str]
    build: Callable[[], Awaitable[bytes]]
    key: str | None = None


def json_page(docs: list[str], total: int, next_cursor: str | None) -> bytes:
    """A list answer around objects that are JSON text already (spliced, not re-encoded)."""
    return b'{"data":[' + ",".join(docs).encode() + b'],"total":%d,"next_cursor":%s}' % (total, encode(next_cursor))


def from_cache(request: web.Request, entry: Entry) -> web.Response:
    """A cache entry as the answer, or 304 when the client holds it already."""
    headers = {"ETag": entry.etag, "X-Catalog-Version": str(entry.version), "Cache-Control": CACHED_FOR}
    inm = request.headers.get("If-None-Match")
    if inm and (inm.strip() == "*" or entry.etag in [t.strip() for t in inm.split(",")]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=entry.body, content_type="application/json", headers=headers)


def uncached(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer that is built for each request (runs, imports, benchmark lists)."""
    return web.Response(
        status=status,
        body=encode(obj),
        content_type="application/json",
        headers={"Cache-Control": "no-cache", **(headers or {})},
    )
