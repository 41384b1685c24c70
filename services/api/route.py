"""A route declared once: its handler with the Structs of its query, path and body, its answer
and its auth. endpoint() makes the aiohttp handler from it; services/api/openapi.py documents it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from services.api import keys
from services.api.auth import Handler, admin_only
from services.api.params import decode
from services.api.respond import Cached, encode, from_cache
from shared.errors import BadRequest, PayloadTooLarge

MAX_BODY = 8 * 1024 * 1024  # room for a 10,000-row benchmark import


@dataclass(frozen=True)
class Body:
    """A request body: its schema per content type (for the document) and its decoder, given the
    raw body and its content type."""

    content: Mapping[str, Any]
    decode: Callable[[bytes, str], Any]
    required: bool = False


@dataclass(frozen=True)
class Route:
    """One route. The handler is called with the request and, as declared, `query=`, `path=`,
    `headers=` and `body=` decoded; a cached route's handler answers Cached (built only on a miss)."""

    method: str
    path: str
    handler: Callable[..., Awaitable[Any]]
    summary: str
    #: The query's Struct; None: the route takes no declared parameters and ignores any.
    query: type[msgspec.Struct] | None = None
    path_params: type[msgspec.Struct] | None = None
    headers: type[msgspec.Struct] | None = None
    body: Body | None = None
    #: The type of the 2xx answer (None: no schema) and its status.
    answer: Any = None
    status: int = 200
    cached: bool = False
    admin: bool = False
    #: Problem statuses it may answer beyond 400 for bad parameters (404, 300, ...), and redirects.
    problems: tuple[int, ...] = ()
    redirects: tuple[int, ...] = ()
    description: str | None = None
    documented: bool = True
    #: Other responses, for routes whose answer is not JSON (metrics, readiness).
    responses: dict[str, Any] = field(default_factory=dict)

    @property
    def doc_path(self) -> str:
        """The path as OpenAPI writes it: `{model_id}` for aiohttp's `{model_id:.+}`."""
        return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", self.path)


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
    return await request.read()


async def _arguments(request: web.Request, route: Route) -> dict[str, Any]:
    """The route's declared parameters and body, decoded; one BadRequest names every bad parameter
    of the path, the query and the headers."""
    args: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, spec, values, where in (
        ("path", route.path_params, request.match_info, "path"),
        ("query", route.query, request.query, "query"),
        ("headers", route.headers, request.headers, "header"),
    ):
        if spec is not None:
            try:
                args[name] = decode(values, spec, where)  # type: ignore[arg-type]
            except BadRequest as e:
                problems += e.invalid_params
    if problems:
        raise BadRequest("invalid parameters", problems)
    if route.body is not None:
        args["body"] = route.body.decode(await read_body(request), request.content_type)
    return args


def endpoint(route: Route) -> Handler:
    """The aiohttp handler of a route. On a cached route the cache is asked first, by the raw
    path and query: a hit costs one dictionary lookup, and nothing is parsed."""

    async def cached(request: web.Request) -> web.StreamResponse:
        cache = request.app[keys.CACHE]
        entry = cache.lookup(request.raw_path)
        if entry is None:
            args = await _arguments(request, route)
            plan: Cached = await route.handler(request, **args)
            query = args.get("query")
            key = plan.key or (request.path + "?" + encode(query).decode() if query is not None else request.path)
            entry = await cache.get_or_build(
                key,
                plan.tags,
                plan.build,
                alias=request.raw_path,
                lasting=plan.lasting,
                version=plan.version,
                immutable=plan.immutable,
            )
        return await from_cache(request, cache, entry)

    async def direct(request: web.Request) -> web.StreamResponse:
        return await route.handler(request, **await _arguments(request, route))  # type: ignore[no-any-return]

    handler = cached if route.cached else direct
    return admin_only(handler) if route.admin else handler
