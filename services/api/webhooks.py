"""Admin routes of change notifications (API.md, "Change notifications"): subscriptions, their
secret, a test event, the delivery log and replay. Every route takes the admin token.

Lead: setup_webhooks(app) registers these and the feeds (services/api/feeds.py); require_admin
comes from views.py today, and _decode/_page stand in for the shared request helper.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from services.api import keys
from services.api.feeds import setup_feeds
from services.api.views import require_admin
from shared.api_models import Name
from shared.db import webhooks as db
from shared.enums import ChangeKind, DeliveryStatus, SubscriptionStatus
from shared.errors import BadRequest, NotFound, PayloadTooLarge, TargetRefused
from shared.webhooks import outbox
from shared.webhooks.delivery import DeliveryResources, close_delivery_resources, open_delivery_resources
from shared.webhooks.filters import FIELD_PATTERN
from shared.webhooks.metrics import DELIVERIES_PENDING
from shared.webhooks.objects import delivery_object, subscription_object
from shared.webhooks.subscriptions import create_subscription, rotate_secret, send_test
from shared.webhooks.targets import MAX_URL_LENGTH

T = TypeVar("T")
#: Hands one delivery id to the workers (blocking; called in a thread).
SEND: web.AppKey[Callable[[int], None]] = web.AppKey("webhook_send")
DELIVERY = web.AppKey("webhook_delivery", DeliveryResources)
MAX_BODY = 64 * 1024
#: How often the pending-deliveries gauge is refreshed.
GAUGE_EVERY = 15.0

FieldPattern = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=FIELD_PATTERN)]
Text = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00]*$")]
_enc = msgspec.json.Encoder()


class SubscriptionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/webhooks."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_LENGTH)]
    providers: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    kinds: Annotated[list[ChangeKind], msgspec.Meta(min_length=1, max_length=3)] | None = None
    fields: Annotated[list[FieldPattern], msgspec.Meta(min_length=1, max_length=100)] | None = None
    description: Text | None = None


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/webhooks/{id}/replay."""

    since_seq: Annotated[int, msgspec.Meta(ge=0, le=2**62)]


def _default_send(delivery_id: int) -> None:
    import services.worker.broker  # noqa: F401 (sets this process's broker; lead: the queue sender)

    outbox.broker_send(delivery_id)


def setup_webhooks(
    app: web.Application, *, send: Callable[[int], None] | None = None, heartbeat: float | None = None
) -> None:
    """Register the webhook admin routes and the feeds, with the resources they use."""
    app[SEND] = send or _default_send
    app.cleanup_ctx.append(_resources)
    r = app.router
    r.add_post("/api/v1/webhooks", create)
    r.add_get("/api/v1/webhooks", list_subscriptions)
    r.add_get("/api/v1/webhooks/{id}", get_subscription)
    r.add_delete("/api/v1/webhooks/{id}", delete_subscription)
    r.add_post("/api/v1/webhooks/{id}/rotate-secret", rotate)
    r.add_post("/api/v1/webhooks/{id}/enable", enable)
    r.add_post("/api/v1/webhooks/{id}/test", test)
    r.add_get("/api/v1/webhooks/{id}/deliveries", deliveries)
    r.add_post("/api/v1/webhooks/{id}/replay", replay)
    setup_feeds(app, heartbeat=heartbeat)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    # After create_app's own resources: the pool and Redis exist.
    res = await open_delivery_resources(app[keys.SETTINGS], app[keys.POOL], app[keys.REDIS])
    app[DELIVERY] = res
    gauge = asyncio.create_task(_pending_gauge(res))
    yield
    gauge.cancel()
    await asyncio.gather(gauge, return_exceptions=True)
    await close_delivery_resources(res)


async def _pending_gauge(res: DeliveryResources) -> None:
    """Keep the queue-depth gauge current (served on this process's /metrics)."""
    while True:
        try:
            due, waiting = await db.pending_counts(res.pool)
            DELIVERIES_PENDING.labels("due").set(due)
            DELIVERIES_PENDING.labels("waiting").set(waiting)
        except Exception:  # PostgreSQL away: the gauge keeps its last value
            pass
        await asyncio.sleep(GAUGE_EVERY)


# -- request and answer helpers ----------------------------------------------------------------


async def _decode(request: web.Request, kind: type[T]) -> T:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
    data = await request.read()
    if len(data) > MAX_BODY:
        raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, RecursionError) as e:
        raise BadRequest(f"invalid body: {e}", [("body", str(e))]) from None


def _answer(request: web.Request, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON, never cached by anyone (answers may hold a secret); a GET gets a strong ETag."""
    body = _enc.encode(obj)
    out = {"Cache-Control": "no-store", "X-Catalog-Version": str(request.app[keys.CACHE].version), **(headers or {})}
    if request.method == "GET":
        etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        out["ETag"] = etag
        inm = request.headers.get("If-None-Match")
        if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
            return web.Response(status=304, headers=out)
    return web.Response(status=status, body=body, content_type="application/json", headers=out)


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("invalid subscription id", [("id", "expected a subscription number")])
    return int(raw)


def _page(request: web.Request, allowed: frozenset[str] = frozenset()) -> tuple[int, int | None]:
    """(limit, cursor) of a list route; any other parameter but `allowed` is an error."""
    errors = [(k, "unknown parameter") for k in request.query if k not in {"limit", "cursor", *allowed}]
    limit_raw, cursor = request.query.get("limit", "50"), request.query.get("cursor")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 500:
        errors.append(("limit", f"expected 1 to 500, got {limit_raw!r}"))
    if cursor is not None and (not cursor.isdigit() or len(cursor) > 18):
        errors.append(("cursor", f"expected next_cursor of the previous page, got {cursor!r}"))
    if errors:
        raise BadRequest("invalid query parameters", errors)
    return int(limit_raw), int(cursor) if cursor is not None else None


async def _subscription(request: web.Request) -> Any:
    row = await db.get_subscription(request.app[keys.POOL], _id(request))
    if row is None:
        raise NotFound(f"no webhook subscription {request.match_info['id']}")
    return row


# -- handlers ----------------------------------------------------------------------------------


async def create(request: web.Request) -> web.Response:
    require_admin(request)
    body = await _decode(request, SubscriptionCreate)
    try:
        sub = await create_subscription(
            request.app[keys.POOL],
            request.app[keys.SETTINGS],
            url=body.url,
            description=body.description,
            providers=body.providers,
            kinds=body.kinds,
            fields=body.fields,
        )
    except TargetRefused as e:
        raise BadRequest(f"this URL is not accepted: {e}", [("url", str(e))]) from None
    return _answer(request, sub, 201, {"Location": f"/api/v1/webhooks/{sub.id}"})


async def list_subscriptions(request: web.Request) -> web.Response:
    require_admin(request)
    limit, cursor = _page(request)
    pool = request.app[keys.POOL]
    rows = await db.list_subscriptions(pool, after_id=cursor or 0, limit=limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    page = {
        "data": [subscription_object(r) for r in rows],
        "total": await db.count_subscriptions(pool),
        "next_cursor": str(rows[-1]["id"]) if more else None,
    }
    return _answer(request, page)


async def get_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    return _answer(request, subscription_object(await _subscription(request)))


async def delete_subscription(request: web.Request) -> web.Response:
    require_admin(request)
    if not await db.delete_subscription(request.app[keys.POOL], _id(request)):
        raise NotFound(f"no webhook subscription {request.match_info['id']}")
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def rotate(request: web.Request) -> web.Response:
    require_admin(request)
    sub = await rotate_secret(request.app[keys.POOL], _id(request))
    if sub is None:
        raise NotFound(f"no webhook subscription {request.match_info['id']}")
    return _answer(request, sub)


async def enable(request: web.Request) -> web.Response:
    require_admin(request)
    row = await db.enable_subscription(request.app[keys.POOL], _id(request))
    if row is None:
        raise NotFound(f"no webhook subscription {request.match_info['id']}")
    return _answer(request, subscription_object(row))


async def test(request: web.Request) -> web.Response:
    """Send a webhook.test event now; the answer is the delivery as its one attempt left it."""
    require_admin(request)
    sub = await _subscription(request)
    if sub["status"] != SubscriptionStatus.ACTIVE:
        raise BadRequest("the subscription is disabled; enable it first", [("id", "disabled")])
    delivery = await send_test(request.app[DELIVERY], request.app[SEND], sub["id"])
    assert delivery is not None
    return _answer(request, delivery, 200 if delivery.status != DeliveryStatus.PENDING else 202)


async def deliveries(request: web.Request) -> web.Response:
    require_admin(request)
    limit, cursor = _page(request, frozenset({"status"}))
    status = request.query.get("status")
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        raise BadRequest("invalid query parameters", [("status", "expected pending, delivered or failed")])
    sub, pool = await _subscription(request), request.app[keys.POOL]
    rows = await db.deliveries_of(pool, sub["id"], before_id=cursor, status=status, limit=limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    page = {
        "data": [delivery_object(r) for r in rows],
        "total": await db.count_deliveries(pool, sub["id"], status=status),
        "next_cursor": str(rows[-1]["id"]) if more else None,
    }
    return _answer(request, page)


async def replay(request: web.Request) -> web.Response:
    require_admin(request)
    body = await _decode(request, ReplayRequest)
    result = await outbox.replay(request.app[keys.POOL], request.app[SEND], _id(request), body.since_seq)
    if result is None:
        raise NotFound(f"no webhook subscription {request.match_info['id']}")
    return _answer(request, result, 202)
