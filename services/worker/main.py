"""The worker process: one dramatiq Worker in this process, stopped once, cleanly, on a signal.

dramatiq's own CLI forks worker children that share its process group, so a process manager
that signals the group (honcho, systemd, a container runtime) makes each child see SIGTERM twice,
and dramatiq treats the second as "kill now". One process per `modelmeta worker`, with an
idempotent handler, stops gracefully however it is signalled; scale out with more processes.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

import structlog
from dramatiq import Worker
from dramatiq.middleware import Middleware
from prometheus_client import Counter, Histogram, start_http_server

from shared.config import Settings

log = structlog.get_logger(__name__)

MESSAGES = Counter("modelmeta_worker_messages_total", "Messages processed by outcome", ["actor", "outcome"])
MESSAGE_SECONDS = Histogram(
    "modelmeta_worker_message_seconds",
    "Time to process a message",
    ["actor"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


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


def run_worker(settings: Settings, *, threads: int, shutdown_timeout: float = 25.0) -> int:
    """Consume until SIGTERM, SIGINT or SIGHUP, then stop: in-flight actors are interrupted and retried."""
    import services.worker.actors  # noqa: F401 (registers the actors on the broker)
    from services.worker import delivery  # noqa: F401 (the webhook delivery actors, issue 12)
    from services.worker.broker import broker

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("worker_stopping", signal=signal.Signals(signum).name)
        stop.set()  # a second signal (a process group and its manager both sent one) changes nothing

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr="0.0.0.0")
    broker.emit_after("process_boot")
    worker = Worker(broker, worker_threads=threads)
    worker.start()
    log.info("worker_started", threads=threads, metrics_port=settings.worker_metrics_port or None)
    while not stop.wait(0.5):
        pass
    worker.stop(timeout=int(shutdown_timeout * 1000))
    broker.close()
    log.info("worker_stopped")
    return 0
