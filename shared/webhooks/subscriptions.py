"""Managing subscriptions: create (the secret is shown once), rotate the secret, send a test event."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import asyncpg
import structlog

from shared.config import Settings
from shared.db import webhooks as db
from shared.errors import RateLimited
from shared.webhooks.delivery import DeliveryResources, deliver
from shared.webhooks.objects import Delivery, Subscription, delivery_object, subscription_object
from shared.webhooks.outbox import Send, send_all
from shared.webhooks.signing import new_secret
from shared.webhooks.targets import Resolve, check_target, system_resolve

log = structlog.get_logger(__name__)

#: After a rotation the previous secret keeps signing, beside the new one, for this long.
ROTATION_OVERLAP = 24 * 3600.0


async def create_subscription(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    url: str,
    description: str | None = None,
    providers: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
    resolve: Resolve = system_resolve,
) -> Subscription:
    """Check the target (TargetRefused says why not), then store the subscription with a new secret.
    The answer is the only one that carries the secret."""
    await check_target(url, allow_private=settings.webhook_allow_private, resolve=resolve)
    secret = new_secret()
    row = await db.create_subscription(
        pool,
        url=url,
        description=description,
        providers=sorted(set(providers)) if providers else None,
        kinds=sorted(set(kinds)) if kinds else None,
        fields=list(dict.fromkeys(fields)) if fields else None,
        secret=secret,
    )
    log.info("webhook_subscription_created", subscription_id=row["id"], receiver=urlsplit(url).hostname)
    return subscription_object(row, secret)


async def rotate_secret(pool: asyncpg.Pool, subscription_id: int) -> Subscription | None:
    """A new secret; the previous one keeps signing beside it for ROTATION_OVERLAP."""
    secret = new_secret()
    row = await db.rotate_secret(pool, subscription_id, secret, ROTATION_OVERLAP)
    if row is None:
        return None
    log.info("webhook_secret_rotated", subscription_id=subscription_id, overlap_s=ROTATION_OVERLAP)
    return subscription_object(row, secret)


async def send_test(res: DeliveryResources, send: Send, subscription_id: int) -> Delivery | None:
    """Send a webhook.test event now, one attempt; the delivery as it ended (None: no such
    subscription). When the receiver's budget is spent, the workers send it shortly instead."""
    delivery_id = await db.insert_test_delivery(res.pool, subscription_id)
    if delivery_id is None:
        return None
    try:
        await deliver(res, delivery_id)
    except RateLimited:
        await send_all(send, [delivery_id])
    row = await db.get_delivery(res.pool, delivery_id)
    assert row is not None
    return delivery_object(row)
