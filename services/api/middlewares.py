"""HTTP middleware: request ids, problem+json errors, metrics, CORS."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from shared.errors import Ambiguous, BadRequest, Forbidden, NotFound, PayloadTooLarge, Redirect, Unauthorized
from shared.schemas.api import Problem

log = structlog.get_logger(__name__)

REQUESTS = Counter("modelmeta_http_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "modelmeta_http_request_seconds",
    "HTTP request latency",
    ["route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Errors that mean "the database is not there right now", not "this request is wrong".
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.InternalClientError,  # a connection left mid-operation by a server restart
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def problem(
    status: int,
    title: str,
    detail: str,
    invalid: list[tuple[str, str]] | None = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    choices: list[str] | None = None,
) -> web.Response:
    """An RFC 9457 problem answer."""
    body = Problem(
        type=f"https://modelmeta.dev/problems/{title.lower().replace(' ', '-')}",
        title=title,
        status=status,
        detail=detail,
        invalid_params=[{"name": n, "reason": r} for n, r in invalid] if invalid else None,
        choices=choices,
        request_id=request_id,
    )
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/problem+json", headers=headers
    )


#: A request id when the client sends none: this process's prefix and a counter (unique, cheap).
_IDS = itertools.count(1)
_ID_PREFIX = os.urandom(4).hex()
#: (route, method, status) -> its latency histogram and request counter, resolved once.
_Children = tuple[Any, Any]
_METRICS: dict[tuple[str, str, int], _Children] = {}


def _children(route: str, method: str, status: int) -> _Children:
    key = (route, method, status)
    children = _METRICS.get(key)
    if children is None:
        children = _METRICS[key] = (LATENCY.labels(route, str(status)), REQUESTS.labels(route, method, str(status)))
    return children


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to the logs and the response; count and time the request; let pages on
    any origin read the answer."""
    rid = request.headers.get("X-Request-ID")
    if rid is None or not _REQUEST_ID.fullmatch(rid):
        rid = f"{_ID_PREFIX}-{next(_IDS)}"
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid)
    started = time.perf_counter()
    resource = request.match_info.route.resource
    response = await _errors(request, handler, rid)
    latency, count = _children(resource.canonical if resource else "unmatched", request.method, response.status)
    latency.observe(time.perf_counter() - started)
    count.inc()
    headers = response.headers
    headers["X-Request-ID"] = rid
    headers["Access-Control-Allow-Origin"] = "*"
    return response


async def _errors(request: web.Request, handler: Handler, rid: str) -> web.StreamResponse:
    try:
        if "%00" in request.raw_path:
            _refuse_nul(request)
        return await handler(request)
    except Redirect as e:
        return web.Response(status=308, headers={"Location": e.location})
    except Ambiguous as e:
        return problem(300, "Multiple Choices", str(e), request_id=rid, choices=e.choices)
    except BadRequest as e:
        return problem(400, "Bad Request", e.detail, e.invalid_params, rid)
    except NotFound as e:
        return problem(404, "Not Found", str(e), request_id=rid)
    except Unauthorized as e:
        return problem(401, "Unauthorized", str(e), request_id=rid, headers={"WWW-Authenticate": "Bearer"})
    except Forbidden as e:
        return problem(403, "Forbidden", str(e), request_id=rid)
    except PayloadTooLarge as e:
        return problem(413, "Payload Too Large", str(e), request_id=rid)
    except web.HTTPRequestEntityTooLarge:
        return problem(413, "Payload Too Large", "the request body is too large", request_id=rid)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return problem(e.status, e.reason, e.text or e.reason, request_id=rid, headers=_allow(e))
    except _UNAVAILABLE as e:
        # PostgreSQL restarting or unreachable: what is cached is still served; the rest waits.
        log.warning("database_unavailable", path=request.path, error=f"{type(e).__name__}: {e}")
        return problem(
            503,
            "Service Unavailable",
            "the catalog database is unavailable; retry shortly",
            request_id=rid,
            headers={"Retry-After": "5"},
        )
    except Exception:
        log.exception("unhandled_error", path=request.path, method=request.method)
        return problem(500, "Internal Server Error", "an unexpected error; it has been logged", request_id=rid)


def _refuse_nul(request: web.Request) -> None:
    """PostgreSQL text cannot hold NUL: refuse it at the door rather than fail in a query (the
    routes' own parameters are checked as they are decoded; this covers every other route)."""
    bad = [(k, "contains a NUL character") for k, v in request.query.items() if "\x00" in v or "\x00" in k]
    bad += [(k, "contains a NUL character") for k, v in request.match_info.items() if "\x00" in v]
    if bad:
        raise BadRequest("invalid parameters", bad)


def _allow(e: web.HTTPException) -> dict[str, str] | None:
    allow: Any = e.headers.get("Allow")
    return {"Allow": allow} if allow else None
