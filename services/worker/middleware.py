"""The worker's own middleware: its resources, opened on the AsyncIO event-loop thread, and its
message metrics."""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware
from prometheus_client import Counter, Histogram

from shared.config import Settings
from shared.resources import RefreshContext, close_context, open_context
from shared.webhooks.delivery import DeliveryResources, close_delivery_resources, open_delivery_resources

log = structlog.get_logger(__name__)

MESSAGES = Counter("modelmeta_worker_messages_total", "Messages processed by outcome", ["actor", "outcome"])
MESSAGE_SECONDS = Histogram(
    "modelmeta_worker_message_seconds",
    "Time to process a message",
    ["actor"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

_context: RefreshContext | None = None
_webhooks: DeliveryResources | None = None


def current_context() -> RefreshContext:
    """The resources of this worker process (set in before_worker_boot)."""
    if _context is None:
        raise RuntimeError("worker resources are not open: is WorkerResources in the middleware list?")
    return _context


class WorkerResources(Middleware):
    """Opens the worker's resources after boot and closes them at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        # Runs after AsyncIO's before_worker_boot (it comes later in the list), so the event loop
        # exists, and before the worker consumes anything, so no message finds the pool missing.
        global _context
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None, "AsyncIO must come before WorkerResources"
        _context = loop_thread.run_coroutine(open_context(self.settings, client_name="worker"))
        log.info("worker_resources_open")

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        global _context
        loop_thread = get_event_loop_thread()
        if _context is not None and loop_thread is not None:
            loop_thread.run_coroutine(close_context(_context))
            _context = None
            log.info("worker_resources_closed")


def current_webhook_resources() -> DeliveryResources:
    """This worker process's webhook delivery resources (set in before_worker_boot)."""
    if _webhooks is None:
        raise RuntimeError("webhook resources are not open: is WebhookResources in the middleware list?")
    return _webhooks


class WebhookResources(Middleware):
    """Opens the webhook delivery session and limits after WorkerResources (on its pool and Redis),
    closes them at shutdown."""

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        global _webhooks
        ctx, loop_thread = current_context(), get_event_loop_thread()
        assert loop_thread is not None, "AsyncIO must come before WebhookResources"
        _webhooks = loop_thread.run_coroutine(open_delivery_resources(ctx.settings, ctx.pool, ctx.redis))

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        # After WorkerResources' (list order): only the HTTP session is ours to close.
        global _webhooks
        loop_thread = get_event_loop_thread()
        if _webhooks is not None and loop_thread is not None:
            loop_thread.run_coroutine(close_delivery_resources(_webhooks))
            _webhooks = None


class WorkerMetrics(Middleware):
    """Counts and times every message this process handles."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def before_process_message(self, broker: Any, message: Any) -> None:
        with self._lock:
            self._started[message.message_id] = time.perf_counter()

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        with self._lock:
            started = self._started.pop(message.message_id, None)
        if started is not None:
            MESSAGE_SECONDS.labels(message.actor_name).observe(time.perf_counter() - started)
        outcome = "ok" if exception is None else ("retried" if not message.failed else "failed")
        MESSAGES.labels(message.actor_name, outcome).inc()

    def after_skip_message(self, broker: Any, message: Any) -> None:
        MESSAGES.labels(message.actor_name, "skipped").inc()
