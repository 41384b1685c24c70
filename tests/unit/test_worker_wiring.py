"""The worker's broker: built by make_broker only, with the actors the sender names."""

from __future__ import annotations

from tests.support import run_probe

PROBE = """
import json, dramatiq
from services.worker.broker import make_broker
from shared.config import Settings

broker = make_broker(Settings())
actors = {name: broker.get_actor(name).queue_name for name in broker.get_declared_actors()}
try:
    make_broker(Settings())
    again = "no error"
except RuntimeError as e:
    again = str(e)
print(json.dumps({
    "global": dramatiq.get_broker() is broker,
    "encoder": type(dramatiq.get_encoder()).__module__ + "." + type(dramatiq.get_encoder()).__name__,
    "actors": actors,
    "middleware": [type(m).__name__ for m in broker.middleware],
    "namespace": broker.namespace,
    "again": again,
}))
"""


def test_make_broker_sets_the_broker_then_declares_the_actors_the_sender_names() -> None:
    from shared.sender import ACTORS

    wiring = run_probe(PROBE)
    assert wiring["global"] is True
    assert wiring["encoder"] == "shared.sender.MsgspecEncoder"
    assert wiring["actors"] == {a.actor_name: a.queue_name for a in ACTORS}
    middleware = wiring["middleware"]
    assert middleware[0] == "WorkerMetrics"
    assert middleware.index("AsyncIO") < middleware.index("WorkerResources")
    assert wiring["namespace"] == "modelmeta:dramatiq"
    # Called a second time in one process, it says why it cannot work rather than half-work.
    assert "make_broker called twice" in wiring["again"]
