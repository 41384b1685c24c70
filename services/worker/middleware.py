"""Worker resources opened once per worker process on the AsyncIO event-loop thread."""

from __future__ import annotations

from typing import Any

import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from shared.config import Settings
from shared.refresh import RefreshContext, close_context, open_context

log = structlog.get_logger(__name__)

_context: RefreshContext | None = None


def current_context() -> RefreshContext:
    """The resources of this worker process (set in after_worker_boot)."""
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
