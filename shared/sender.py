"""The queue: where each actor's messages go, their wire format, and the sender that web,
scheduler and CLI enqueue with.

Those processes never import the worker's actors (declaring an actor binds it to a broker) nor
its middleware: they build `dramatiq.Message`s by actor and queue name and put them on the same
Redis queues, encoded by the very encoder the worker decodes with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq
import msgspec
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from shared.config import Settings


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


#: The wire format of every message (the worker sets it as dramatiq's global encoder).
ENCODER = MsgspecEncoder()


@dataclass(frozen=True, slots=True)
class ActorRef:
    """Where an actor's messages go: its name and its queue."""

    actor_name: str
    queue_name: str


PLAN_REFRESH = ActorRef("plan_refresh", "refresh")
SYNC_PROVIDER = ActorRef("sync_provider", "refresh")
#: plan_refresh's on_retry_exhausted callback.
RUN_GAVE_UP = ActorRef("run_gave_up", "refresh")
#: Webhook deliveries (issue 12), on a queue of their own so that a slow receiver never holds up a refresh.
DELIVER_CHANGES = ActorRef("deliver_changes", "webhooks")
#: Every actor the worker declares (it checks that its actors are these).
ACTORS = (PLAN_REFRESH, SYNC_PROVIDER, RUN_GAVE_UP, DELIVER_CHANGES)


def redis_broker(settings: Settings, middleware: list[Middleware]) -> RedisBroker:
    """A dramatiq RedisBroker on the deployment's queues (it connects on first use).

    Senders and workers agree on the namespace, and on the heartbeat timeout that the broker's
    maintenance (run now and then on enqueue too) uses to tell a dead worker from a live one.
    """
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=settings.redis_url,
        namespace=f"{settings.redis_prefix}:dramatiq",
        heartbeat_timeout=settings.worker_heartbeat_timeout_ms,
        maintenance_chance=settings.worker_maintenance_chance,
        middleware=middleware,
    )


def close_broker(broker: RedisBroker) -> None:
    """Disconnect a RedisBroker's connections (dramatiq's own close() leaves its pool open)."""
    broker.close()
    broker.client.connection_pool.disconnect()


class _Message(dramatiq.Message[None]):
    """A message encoded by ENCODER whatever this process's global dramatiq encoder is."""

    def encode(self) -> bytes:
        return ENCODER.encode(self.asdict())


class Sender:
    """Enqueues messages by actor and queue name, without the worker's actors or middleware."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker

    @classmethod
    def from_settings(cls, settings: Settings) -> Sender:
        """A sender on the deployment's Redis queues (no middleware: sending needs none)."""
        return cls(redis_broker(settings, middleware=[]))

    def send(self, actor: ActorRef, *args: Any) -> dramatiq.Message[None]:
        """Enqueue one message for `actor` (blocking: call it in a thread from async code)."""
        message = _Message(queue_name=actor.queue_name, actor_name=actor.actor_name, args=args, kwargs={}, options={})
        sent: dramatiq.Message[None] = self.broker.enqueue(message)
        return sent

    def plan_refresh(self, run_id: int) -> None:
        """Ask a worker to plan run `run_id`."""
        self.send(PLAN_REFRESH, run_id)

    def sync_provider(self, run_id: int, provider_id: str) -> None:
        """Ask a worker to sync one provider of run `run_id`."""
        self.send(SYNC_PROVIDER, run_id, provider_id)

    def deliver_changes(self, delivery_id: int) -> None:
        """Ask a worker to attempt webhook delivery `delivery_id`."""
        self.send(DELIVER_CHANGES, delivery_id)

    def close(self) -> None:
        """Close the broker's Redis connections."""
        close_broker(self.broker)
