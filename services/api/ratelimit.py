"""What one client may ask of the web processes: per-client request budgets and long-lived streams.

Budgets (API_RATE_LIMIT, API_DOCUMENT_RATE_LIMIT) are the workers' Redis limiter
(shared/ratelimit.py), asked once per request and never waited on, keyed by the client's address,
so every web process of a deployment shares one budget per client. A refused request gets 429
problem+json with `Retry-After`; every answer of a limited route carries the headers of the IETF
draft draft-ietf-httpapi-ratelimit-headers-07 (`RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset`, `RateLimit-Policy`). Redis away: requests are served (fail open) and it is
logged once a minute.

The client is the peer address, unless the peer is in TRUSTED_PROXIES: then the right-most address
of `X-Forwarded-For` that is not a trusted proxy. IPv6 clients are counted per /64, the block one
subscriber gets.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import redis.exceptions
import structlog
from aiohttp import web
from prometheus_client import Counter
from redis.asyncio import Redis

from services.api import keys
from services.api.middlewares import Handler, problem
from shared.config import Network, RateLimit, Settings
from shared.ratelimit import RateLimiter, Slot

log = structlog.get_logger(__name__)

LIMITED = Counter("modelmeta_http_limited_total", "Requests refused by a per-client limit", ["route", "limit"])
LIMITER_UNAVAILABLE = Counter(
    "modelmeta_http_limiter_unavailable_total", "Requests served unchecked because Redis did not answer"
)
STREAMS_REFUSED = Counter("modelmeta_http_streams_refused_total", "Long-lived streams refused", ["bound"])

#: Never limited: probes and scrapes (admin routes, which need a token, are exempt too).
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: The whole-catalog documents, the most expensive answers: API_DOCUMENT_RATE_LIMIT when set.
DOCUMENT_PATHS = frozenset(
    {"/api.json", "/model-schema.json", "/exports/litellm.json", "/models.json", "/catalog.json"}
)
#: How long to answer without Redis after it failed, and how often to say so in the log.
_OPEN_FOR = 1.0
_LOG_EVERY = 60.0
#: A Redis that does not answer within this is taken as down for the request.
_REDIS_TIMEOUT = 0.25
#: Clients refused lately, remembered by each process so that a client flooding past its budget
#: costs no Redis call until its window frees a slot (which no other process can do sooner).
_REFUSED_MAX = 10_000


# -- who the client is -------------------------------------------------------------------------


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the right-most address
    of X-Forwarded-For that is not one (all trusted: the left-most). An entry that is not an
    address stops the walk at the last good one: nothing left of it can be believed."""
    client = peer or "unknown"
    if not trusted or not _within(client, trusted):
        return client
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client
        client = hop
        if not _within(hop, trusted):
            return hop
    return client


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_key(address: str) -> str:
    """The budget key of an address: itself, or its /64 for IPv6 (one subscriber's block)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_of(request: web.Request) -> str:
    """The address of the client of a request, as the settings say to read it."""
    trusted = request.app[keys.SETTINGS].trusted_proxies
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", ()), trusted)


# -- budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    limit: RateLimit
    limiter: RateLimiter

    @property
    def policy(self) -> str:
        return f"{self.limit.count};w={math.ceil(self.limit.period)}"


#: The budget and slot a request was let through with, for its answer's headers.
_SLOT: web.RequestKey[tuple[Budget, Slot]] = web.RequestKey("ratelimit_slot")


class ClientLimits:
    """The budgets of one web process: which applies to a route, and asking Redis (fail open)."""

    def __init__(self, settings: Settings, client: Redis, admin_paths: frozenset[str]) -> None:
        prefix = f"{settings.redis_prefix}:client"
        api = settings.api_rate_limit
        docs = settings.api_document_rate_limit or api
        self.api = Budget("api", api, RateLimiter(client, prefix, api, margin=0)) if api else None
        self.documents = Budget("document", docs, RateLimiter(client, prefix, docs, margin=0)) if docs else None
        self.exempt = EXEMPT_PATHS | admin_paths
        self._down_until = 0.0
        self._logged_at = -_LOG_EVERY
        self._refused: dict[str, float] = {}

    def budget_for(self, route: str) -> Budget | None:
        if route in self.exempt:
            return None
        return self.documents if route in DOCUMENT_PATHS else self.api

    async def take(self, budget: Budget, client: str) -> Slot | None:
        """A slot of the client's budget, or None when Redis cannot say (the request is served)."""
        now = time.monotonic()
        key = f"{budget.name}:{client_key(client)}"
        until = self._refused.get(key)
        if until is not None:
            if now < until:
                return Slot(False, 0, until - now)
            del self._refused[key]
        if now < self._down_until:
            LIMITER_UNAVAILABLE.inc()
            return None
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                slot = await budget.limiter.take(key)
            if not slot.granted:
                if len(self._refused) >= _REFUSED_MAX:
                    self._refused.clear()
                self._refused[key] = now + slot.reset
            return slot
        except (redis.exceptions.RedisError, OSError, TimeoutError) as e:
            self._down_until = now + _OPEN_FOR
            LIMITER_UNAVAILABLE.inc()
            if now - self._logged_at >= _LOG_EVERY:
                self._logged_at = now
                log.warning("client_limits_unavailable", error=f"{type(e).__name__}: {e}", serving="unchecked")
            return None


LIMITS = web.AppKey("client_limits", ClientLimits)


@web.middleware
async def client_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request over its client's budget with 429; let the rest through, noting the slot."""
    limits = request.app.get(LIMITS)
    resource = request.match_info.route.resource
    route = resource.canonical if resource else "unmatched"
    budget = limits.budget_for(route) if limits else None
    if budget is None or limits is None:
        return await handler(request)
    slot = await limits.take(budget, client_of(request))
    if slot is None:
        return await handler(request)
    request[_SLOT] = (budget, slot)
    if slot.granted:
        return await handler(request)
    LIMITED.labels(route, budget.name).inc()
    wait = str(math.ceil(slot.reset))
    rid = structlog.contextvars.get_contextvars().get("request_id")
    detail = f"over {budget.limit.count} requests in {budget.limit.period:g} s from this client; retry in {wait} s"
    return problem(429, "Too Many Requests", detail, request_id=rid, headers={"Retry-After": wait})


async def ratelimit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the draft-07 headers on every answer of a limited route, errors too."""
    noted: tuple[Budget, Slot] | None = request.get(_SLOT)
    if noted is not None:
        budget, slot = noted
        response.headers["RateLimit-Limit"] = str(budget.limit.count)
        response.headers["RateLimit-Remaining"] = str(max(0, slot.remaining))
        response.headers["RateLimit-Reset"] = str(math.ceil(slot.reset))
        response.headers["RateLimit-Policy"] = budget.policy


def install(app: web.Application, admin_paths: frozenset[str]) -> None:
    """Register the limits on an app whose settings ask for them (nothing at all otherwise), and
    the stream bound on every app."""
    settings = app[keys.SETTINGS]
    app[STREAMS] = StreamSlots(settings.web_max_streams, settings.web_max_streams_per_client)
    if settings.api_rate_limit is None and settings.api_document_rate_limit is None:
        return
    app.middlewares.append(client_limits)
    app.on_response_prepare.append(ratelimit_headers)

    async def open_limits(app: web.Application) -> AsyncIterator[None]:
        app[LIMITS] = ClientLimits(settings, app[keys.REDIS], admin_paths)
        yield

    app.cleanup_ctx.append(open_limits)


# -- long-lived streams ------------------------------------------------------------------------


class StreamSlots:
    """A bound on concurrent long-lived streams (server-sent events, long polls): at most `total`
    in this process and `per_client` per client. For the change stream's handler:

        return await request.app[STREAMS].serve(request, stream_changes)

    Over the per-client bound: 429; over the process's: 503; both with Retry-After.
    """

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open: Tally[str] = Tally()

    @property
    def held(self) -> int:
        return self.open.total()

    async def serve(
        self, request: web.Request, stream: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        client = client_key(client_of(request))
        rid = structlog.contextvars.get_contextvars().get("request_id")
        if self.open[client] >= self.per_client:
            STREAMS_REFUSED.labels("client").inc()
            detail = f"this client has {self.per_client} streams open already"
            return problem(429, "Too Many Requests", detail, request_id=rid, headers={"Retry-After": "5"})
        if self.held >= self.total:
            STREAMS_REFUSED.labels("process").inc()
            detail = "this process serves as many streams as it may; retry shortly"
            return problem(503, "Service Unavailable", detail, request_id=rid, headers={"Retry-After": "5"})
        self.open[client] += 1
        try:
            return await stream(request)
        finally:
            self.open[client] -= 1
            if self.open[client] <= 0:
                del self.open[client]


STREAMS = web.AppKey("streams", StreamSlots)
