"""The sender puts messages on the queues the worker consumes, in the worker's encoding."""

from __future__ import annotations

import dramatiq
import dramatiq.message
import pytest
import redis

from shared.config import Settings
from shared.sender import ENCODER, PLAN_REFRESH, SYNC_PROVIDER, Sender, close_broker, redis_broker
from tests.support import REDIS_URL


def test_sender_enqueues_what_the_worker_consumes(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    sender = Sender.from_settings(settings)
    worker_side = redis_broker(settings, middleware=[])
    worker_side.declare_queue(PLAN_REFRESH.queue_name)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        # The sender encodes with the worker's encoder, whatever this process's global one is.
        monkeypatch.setattr(dramatiq.message, "global_encoder", dramatiq.PickleEncoder())
        sender.plan_refresh(42)
        sender.sync_provider(42, "acme")
        monkeypatch.undo()
        # On the wire: the worker's msgspec encoding, under this deployment's namespace.
        raw = client.hvals(f"{settings.redis_prefix}:dramatiq:{PLAN_REFRESH.queue_name}.msgs")
        sent = sorted((m["actor_name"], m["args"]) for m in map(ENCODER.decode, raw))
        assert sent == [(PLAN_REFRESH.actor_name, [42]), (SYNC_PROVIDER.actor_name, [42, "acme"])]
        # And dramatiq's own consumer, as a worker runs it, receives both, in order.
        consumer = worker_side.consume(PLAN_REFRESH.queue_name, prefetch=2, timeout=1000)
        got = []
        for message in consumer:
            if message is None:
                break
            got.append((message.actor_name, message.args))
            consumer.ack(message)
            if len(got) == 2:
                break
        consumer.close()
        assert got == [("plan_refresh", (42,)), ("sync_provider", (42, "acme"))]
    finally:
        client.close()
        sender.close()
        close_broker(worker_side)
