"""The worker's broker: built from its settings by the worker process only, never at import."""

from __future__ import annotations

import importlib
import sys

import dramatiq
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

from services.worker.middleware import WebhookResources, WorkerMetrics, WorkerResources
from shared.config import Settings
from shared.retry import ACTOR_MESSAGE
from shared.sender import ACTORS, ENCODER, redis_broker

#: The modules that declare actors: imported once the broker is set, so that their actors bind to it.
ACTOR_MODULES = ("services.worker.actors", "services.worker.delivery")


def worker_middleware(settings: Settings) -> list[Middleware]:
    """dramatiq's middleware for a worker, with ours: metrics first, resources after AsyncIO."""
    return [
        WorkerMetrics(),
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(min_backoff=int(ACTOR_MESSAGE.first * 1000), max_backoff=int(ACTOR_MESSAGE.cap * 1000)),
        CurrentMessage(),
        AsyncIO(),
        # After AsyncIO: it opens its pools on the event-loop thread AsyncIO starts.
        WorkerResources(settings),
        # After WorkerResources: the webhook delivery resources use its pool and Redis.
        WebhookResources(),
    ]


def make_broker(settings: Settings) -> RedisBroker:
    """Set the worker's broker and encoder as dramatiq's globals, then declare the actors on it.

    Call it once per process, before anything imports an actor module (an actor binds to the
    global broker when it is declared, and would otherwise get a default one).
    """
    bound = [name for name in ACTOR_MODULES if name in sys.modules]
    if bound:
        raise RuntimeError(
            f"{', '.join(bound)} imported before make_broker (or make_broker called twice): "
            "its actors are bound to another broker"
        )
    broker = redis_broker(settings, worker_middleware(settings))
    dramatiq.set_encoder(ENCODER)
    dramatiq.set_broker(broker)
    for name in ACTOR_MODULES:
        importlib.import_module(name)
    declared = set(broker.get_declared_actors())
    expected = {a.actor_name for a in ACTORS}
    if declared != expected:
        raise RuntimeError(f"the actor modules declare {sorted(declared)}; shared.sender names {sorted(expected)}")
    return broker
