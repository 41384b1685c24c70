"""Answers: JSON bodies, pages, and cache entries served in the coding a request accepts, with ETag,
304 and version headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from services.api.cache import Entry, ResponseCache
from services.api.compression import IDENTITY, negotiate

_encoder = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


@dataclass(frozen=True, slots=True)
class Cached:
    """What a cached route answers on a miss: the providers its body depends on ("*" for any),
    how to build the body, and the cache key when the path and the decoded query are not it."""

    tags: frozenset[str]
    build: Callable[[], Awaitable[bytes]]
    key: str | None = None
    #: Kept until the catalog changes (not bounded by CACHE_TTL): a whole-catalog document.
    lasting: bool = False
    #: The catalog version the body is built from when it is not the current one (`at=`, issue 13).
    version: int | None = None
    #: The body never changes (an answer about a past catalog): Cache-Control says immutable.
    immutable: bool = False


def json_page(docs: list[str], total: int, next_cursor: str | None) -> bytes:
    """A list answer around objects that are JSON text already (spliced, not re-encoded)."""
    return b'{"data":[' + ",".join(docs).encode() + b'],"total":%d,"next_cursor":%s}' % (total, encode(next_cursor))


async def from_cache(request: web.Request, cache: ResponseCache, entry: Entry) -> web.Response:
    """A cache entry as the answer, in the coding the request accepts (bodies over 1 kB), or 304
    when the client holds that representation already. Headers come prebuilt with the entry."""
    coding = negotiate(request.headers.get("Accept-Encoding")) if entry.compressible else IDENTITY
    rep = entry.reps.get(coding) or await cache.representation(entry, coding)
    inm = request.headers.get("If-None-Match")
    if inm and (inm == rep.etag or _matches(inm, rep.etag)):
        return web.Response(status=304, headers=rep.not_modified)
    return web.Response(body=rep.body, headers=rep.headers)


def _matches(if_none_match: str, etag: str) -> bool:
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


def uncached(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer that is built for each request (runs, imports, benchmark lists)."""
    return web.Response(
        status=status,
        body=encode(obj),
        content_type="application/json",
        headers={"Cache-Control": "no-cache", **(headers or {})},
    )
