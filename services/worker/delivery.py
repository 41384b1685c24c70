"""The delivery actors: thin async wrappers around shared.webhooks, on a queue of their own so that
a slow receiver never holds up a refresh message.

Lead: the worker imports this module after the broker is set (services/worker/main.py); the
WebhookResources middleware is added to the broker here, after WorkerResources, and belongs in
the broker factory's middleware list.
"""

from __future__ import annotations

import random
from typing import Any

import dramatiq
import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from services.worker.actors import async_actor
from services.worker.middleware import WorkerResources, current_context
from shared.errors import RateLimited
from shared.webhooks.delivery import DeliveryResources, close_delivery_resources, deliver, open_delivery_resources
from shared.webhooks.outbox import ACTOR, QUEUE

log = structlog.get_logger(__name__)

#: Give up a message after this many unexpected errors (PostgreSQL away, say); the sweep sends
#: the delivery again later. A dramatiq.Retry we raise ourselves is not counted.
MAX_UNEXPECTED_FAILURES = 5

_resources: DeliveryResources | None = None


def current_resources() -> DeliveryResources:
    """This worker process's delivery resources (set in before_worker_boot)."""
    if _resources is None:
        raise RuntimeError("webhook resources are not open: is WebhookResources in the middleware list?")
    return _resources


class WebhookResources(Middleware):
    """Opens the delivery session and limits after WorkerResources, closes them at shutdown."""

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        global _resources
        ctx, loop_thread = current_context(), get_event_loop_thread()
        assert loop_thread is not None, "AsyncIO must come before WebhookResources"
        _resources = loop_thread.run_coroutine(open_delivery_resources(ctx.settings, ctx.pool, ctx.redis))

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        global _resources
        loop_thread = get_event_loop_thread()
        if _resources is not None and loop_thread is not None:
            loop_thread.run_coroutine(close_delivery_resources(_resources))
            _resources = None


def _retry_when(retries: int, exc: BaseException) -> bool:
    return isinstance(exc, dramatiq.Retry) or retries < MAX_UNEXPECTED_FAILURES


def _later(seconds: float, reason: str) -> dramatiq.Retry:
    return dramatiq.Retry(reason, delay=max(1, int(seconds * 1000)) + random.randint(0, 50))


# priority: behind the refresh actors (0) in a worker's own queue, so a backlog of deliveries never
# holds up a sync_provider that this worker has already fetched.
@async_actor(queue_name=QUEUE, retry_when=_retry_when, time_limit=120_000, notify_shutdown=True, priority=10)
async def deliver_changes(delivery_id: int) -> None:
    """Attempt one delivery; come back when its next attempt (or the receiver's limit) is due."""
    structlog.contextvars.bind_contextvars(delivery_id=delivery_id)
    try:
        outcome = await deliver(current_resources(), delivery_id)
    except RateLimited as e:
        raise _later(e.delay, str(e)) from None
    if outcome.retry_in is not None:
        raise _later(outcome.retry_in, outcome.status)


assert deliver_changes.actor_name == ACTOR
dramatiq.get_broker().add_middleware(WebhookResources(), after=WorkerResources)
