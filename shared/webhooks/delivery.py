"""One delivery attempt: claim the row, check the target, sign, POST, record what happened.

The row, not the message, is the truth: a message only says "look at delivery N". An attempt is
made only when the row is pending, due and not held by another worker (a lease that outlives a
killed worker by a little), so a redelivered or duplicate message sends nothing twice, and every
attempt of a delivery carries the same webhook-id and body (built from the change log).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import structlog
from redis.asyncio import Redis

from shared.config import Settings
from shared.db import Conn
from shared.db import webhooks as db
from shared.enums import DeliveryStatus, SubscriptionStatus
from shared.errors import RateLimited, TargetRefused
from shared.ratelimit import RateLimiter
from shared.webhooks.batches import in_batch
from shared.webhooks.filters import Filters
from shared.webhooks.gate import ConcurrencyGate
from shared.webhooks.metrics import ATTEMPT_SECONDS, DELIVERY_ATTEMPTS, FIRST_ATTEMPT_LATENCY
from shared.webhooks.payload import WEBHOOK_TEST, changed_body, message_id, test_body
from shared.webhooks.retries import next_delay, parse_retry_after
from shared.webhooks.signing import webhook_headers
from shared.webhooks.targets import GuardedResolver, check_target

log = structlog.get_logger(__name__)

#: At most this much of a receiver's answer is read (it goes into last_error).
MAX_RESPONSE_BYTES = 4096
#: A lease outlives the request timeout by this much (the writes after the request).
LEASE_MARGIN = 10.0
#: A message arriving this early (a delayed retry's rounding) is still attempted.
EARLY = 0.2


@dataclass(frozen=True, slots=True)
class DeliveryResources:
    """What an attempt uses: the pool, an HTTP session of its own, the per-receiver limits."""

    settings: Settings
    pool: asyncpg.Pool
    session: aiohttp.ClientSession
    limiter: RateLimiter
    gate: ConcurrencyGate


@dataclass(frozen=True, slots=True)
class Outcome:
    """What deliver() did; retry_in says when the message should come back."""

    status: str  # delivered, retrying, failed, gone, skipped, waiting
    retry_in: float | None = None


async def open_delivery_resources(settings: Settings, pool: asyncpg.Pool, redis: Redis) -> DeliveryResources:
    """A session that follows no redirect, keeps no cookie and connects only to checked addresses."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(settings.webhook_allow_private), use_dns_cache=False, limit=200
    )
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": "modelmeta-webhooks/0.1"},
        auto_decompress=False,
    )
    lease = settings.webhook_timeout + LEASE_MARGIN
    return DeliveryResources(
        settings=settings,
        pool=pool,
        session=session,
        limiter=RateLimiter(redis, settings.redis_prefix, settings.webhook_rate_limit),
        gate=ConcurrencyGate(redis, settings.redis_prefix, settings.webhook_concurrency, lease),
    )


async def close_delivery_resources(res: DeliveryResources) -> None:
    await res.session.close()


def receiver_key(url: str) -> str:
    """What the per-receiver limits are keyed by: the URL's host and port."""
    return "webhook:" + urlsplit(url).netloc.lower()


async def deliver(res: DeliveryResources, delivery_id: int) -> Outcome:
    """Make one attempt of a delivery if it is due; say when to come back if it is not done.

    RateLimited (the receiver's budget or its concurrency is spent) leaves the delivery as it
    was, for the caller to try again later.
    """
    async with res.pool.acquire() as conn:  # one connection (one reset) for the claim and the body
        claimed = await db.claim_delivery(conn, delivery_id, res.settings.webhook_timeout + LEASE_MARGIN, EARLY)
        body = await _body(conn, claimed) if claimed is not None else b""
    if claimed is None:
        return await _not_claimed(res, delivery_id)
    if claimed["attempts"] == 1 and claimed["since_commit_s"] is not None:
        FIRST_ATTEMPT_LATENCY.observe(claimed["since_commit_s"])
    async with _receiver_slot(res, receiver_key(claimed["url"]), delivery_id):
        answer = await _attempt(res, claimed, body)
    return await _record(res, claimed, answer)


async def _not_claimed(res: DeliveryResources, delivery_id: int) -> Outcome:
    """Why a delivery could not be claimed: done, its subscription disabled, or not due yet."""
    state = await db.delivery_state(res.pool, delivery_id)
    if state is None or state["status"] != DeliveryStatus.PENDING:
        return Outcome("skipped")
    if state["subscription_status"] != SubscriptionStatus.ACTIVE:
        await db.fail_delivery(res.pool, delivery_id, "subscription disabled")
        return Outcome("skipped")
    # Not due, or another worker holds it (or held it and died): come back when that ends.
    return Outcome("waiting", max(state["wait_s"], EARLY))


@asynccontextmanager
async def _receiver_slot(res: DeliveryResources, key: str, delivery_id: int) -> AsyncIterator[None]:
    """The receiver's rate and concurrency limits; when they are spent, the claim is undone."""
    try:
        await res.limiter.acquire(key)
        async with res.gate.hold(key):
            yield
    except RateLimited:
        await db.release_claim(res.pool, delivery_id)
        raise


async def _body(conn: Conn, d: Any) -> bytes:
    if d["event_type"] == WEBHOOK_TEST:
        return test_body(d["created_at"], d["subscription_id"])
    filters = Filters.of(d["providers"], d["kinds"], d["fields"])
    rows = [
        r
        for r in await db.batch_rows(conn, d["first_seq"], d["last_seq"])
        if in_batch(r, d["provider_id"], d["catalog_version"])
        and filters.matches(r["provider_id"], r["kind"], r["fields"])
    ]
    return changed_body(d["created_at"], d["run_id"], d["provider_id"], rows)


@dataclass(frozen=True, slots=True)
class Answer:
    """A receiver's answer to one attempt (status None when there was no answer)."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def _attempt(res: DeliveryResources, d: Any, body: bytes) -> Answer:
    url, timeout = d["url"], res.settings.webhook_timeout
    try:
        await check_target(url, allow_private=res.settings.webhook_allow_private)
    except TargetRefused as e:
        return Answer(None, f"refused: {e}")
    signing = [d["secret"], *([d["previous_secret"]] if d["previous_secret"] else [])]
    headers = webhook_headers(signing, message_id(d["id"]), int(time.time()), body)
    started = time.perf_counter()
    try:
        async with res.session.post(
            url, data=body, headers=headers, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as r:
            text = await _read_capped(r)
            if 200 <= r.status < 300:
                return Answer(r.status)
            return Answer(r.status, f"HTTP {r.status}: {text}", parse_retry_after(r.headers.get("Retry-After")))
    except TargetRefused as e:  # the connector's resolver saw a different answer than the check
        return Answer(None, f"refused: {e}")
    except TimeoutError:
        return Answer(None, f"timed out after {timeout:g}s")
    except aiohttp.ClientError as e:
        return Answer(None, f"{type(e).__name__}: {e}"[:500])
    finally:
        ATTEMPT_SECONDS.observe(time.perf_counter() - started)


async def _read_capped(r: aiohttp.ClientResponse) -> str:
    data = b""
    while len(data) < MAX_RESPONSE_BYTES:
        chunk = await r.content.read(MAX_RESPONSE_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    text = data.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text).strip()[:300]


async def _record(res: DeliveryResources, d: Any, answer: Answer) -> Outcome:
    log_ = log.bind(
        delivery_id=d["id"], subscription_id=d["subscription_id"], attempt=d["attempts"], receiver=_host(d["url"])
    )
    if answer.ok:
        assert answer.status is not None
        await db.record_delivered(res.pool, d["id"], answer.status)
        DELIVERY_ATTEMPTS.labels("delivered").inc()
        return Outcome("delivered")
    error = answer.error or "failed"
    if answer.status == 410:
        await db.record_failure(res.pool, d["id"], status_code=410, error=error, retry_in=None, disable_after=None)
        await _disable(res, d["subscription_id"], "the receiver answered 410 Gone")
        DELIVERY_ATTEMPTS.labels("gone").inc()
        log_.warning("webhook_gone", status=410)
        return Outcome("gone")
    schedule = (0.0,) if d["event_type"] == WEBHOOK_TEST else res.settings.webhook_retry_schedule
    retry_in = next_delay(schedule, d["attempts"], answer.retry_after)
    exhausted, since = await db.record_failure(
        res.pool,
        d["id"],
        status_code=answer.status,
        error=error,
        retry_in=retry_in,
        disable_after=res.settings.webhook_disable_after,
    )
    DELIVERY_ATTEMPTS.labels("refused" if error.startswith("refused") else "failed").inc()
    log_.warning("webhook_attempt_failed", status=answer.status, error=error, retry_in_s=retry_in)
    if exhausted:
        await _disable(res, d["subscription_id"], f"failing continuously since {since:%Y-%m-%dT%H:%M:%SZ}: {error}")
        return Outcome("failed")
    return Outcome("retrying" if retry_in is not None else "failed", retry_in)


async def _disable(res: DeliveryResources, subscription_id: int, reason: str) -> None:
    async with res.pool.acquire() as conn:
        await db.disable_subscription(conn, subscription_id, reason)
    log.warning("webhook_subscription_disabled", subscription_id=subscription_id, reason=reason)


def _host(url: str) -> str:
    # Only the host is logged: a receiver's path or query may hold a token of its own.
    return urlsplit(url).hostname or "?"
