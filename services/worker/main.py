"""The worker process: one dramatiq Worker in this process, stopped once, cleanly, on a signal.

dramatiq's own CLI forks worker children that share its process group, so a process manager
that signals the group (honcho, systemd, a container runtime) makes each child see SIGTERM twice,
and dramatiq treats the second as "kill now". One process per `modelmeta worker`, with an
idempotent handler, stops gracefully however it is signalled; scale out with more processes.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog
from dramatiq import Worker
from prometheus_client import start_http_server

from services.worker.broker import make_broker
from shared.config import Settings
from shared.sender import close_broker

log = structlog.get_logger(__name__)


def run_worker(settings: Settings, *, threads: int, shutdown_timeout: float = 25.0) -> int:
    """Consume until SIGTERM, SIGINT or SIGHUP, then stop: in-flight actors are interrupted and retried."""
    broker = make_broker(settings)
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
    close_broker(broker)
    log.info("worker_stopped")
    return 0
