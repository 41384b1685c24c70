"""The delivery actors: thin async wrappers around shared.webhooks, on a queue of their own so that
a slow receiver never holds up a refresh message.

Imported by make_broker (services/worker/broker.py, ACTOR_MODULES) once the broker is set; the
resources it uses are opened by the WebhookResources middleware (services/worker/middleware.py).
"""

from __future__ import annotations

import random

import dramatiq
import structlog

from services.worker.actors import async_actor
from services.worker.middleware import current_webhook_resources
from shared.errors import RateLimited
from shared.sender import DELIVER_CHANGES
from shared.webhooks.delivery import deliver

log = structlog.get_logger(__name__)

#: Give up a message after this many unexpected errors (PostgreSQL away, say); the sweep sends
#: the delivery again later. A dramatiq.Retry we raise ourselves is not counted.
MAX_UNEXPECTED_FAILURES = 5


def _retry_when(retries: int, exc: BaseException) -> bool:
    return isinstance(exc, dramatiq.Retry) or retries < MAX_UNEXPECTED_FAILURES


def _later(seconds: float, reason: str) -> dramatiq.Retry:
    return dramatiq.Retry(reason, delay=max(1, int(seconds * 1000)) + random.randint(0, 50))


# priority: behind the refresh actors (0) in a worker's own queue, so a backlog of deliveries never
# holds up a sync_provider that this worker has already fetched.
@async_actor(DELIVER_CHANGES, retry_when=_retry_when, time_limit=120_000, notify_shutdown=True, priority=10)
async def deliver_changes(delivery_id: int) -> None:
    """Attempt one delivery; come back when its next attempt (or the receiver's limit) is due."""
    structlog.contextvars.bind_contextvars(delivery_id=delivery_id)
    try:
        outcome = await deliver(current_webhook_resources(), delivery_id)
    except RateLimited as e:
        raise _later(e.delay, str(e)) from None
    if outcome.retry_in is not None:
        raise _later(outcome.retry_in, outcome.status)
