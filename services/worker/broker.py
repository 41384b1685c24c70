"""The dramatiq broker and encoder: the only globals, set here and imported first by every actor module."""

from __future__ import annotations

from typing import Any

import dramatiq
import msgspec
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from services.worker.main import WorkerMetrics
from services.worker.middleware import WorkerResources
from shared.config import Settings
from shared.logging import configure_logging


class MsgspecEncoder(dramatiq.Encoder):
    """Messages as JSON, encoded and decoded by msgspec."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    def encode(self, data: dict[str, Any]) -> bytes:
        return self._encoder.encode(data)

    def decode(self, data: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self._decoder.decode(data)
        return result


settings = Settings.from_env()
configure_logging(settings.log_level, settings.log_format)

middleware: list[Middleware] = [
    WorkerMetrics(),
    AgeLimit(),
    TimeLimit(),
    ShutdownNotifications(),
    Callbacks(),
    Pipelines(),
    Retries(min_backoff=1_000, max_backoff=60_000),
    CurrentMessage(),
    AsyncIO(),
    # After AsyncIO: it opens its pools on the event-loop thread AsyncIO starts.
    WorkerResources(settings),
]
broker = RedisBroker(  # type: ignore[no-untyped-call]
    url=settings.redis_url,
    namespace=f"{settings.redis_prefix}:dramatiq",
    heartbeat_timeout=settings.worker_heartbeat_timeout_ms,
    maintenance_chance=settings.worker_maintenance_chance,
    middleware=middleware,
)
dramatiq.set_encoder(MsgspecEncoder())
dramatiq.set_broker(broker)
