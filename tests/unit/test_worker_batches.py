"""The worker's sync messages: a plan's providers sent in batches (refresh.sync_batches), a batch
that fails sent again as one message per provider, and a batch of a run from another modelmeta split
at once."""

from __future__ import annotations

from tests.support import run_probe

PROBE = """
import asyncio, json
from services.worker.broker import make_broker
from shared.config import Settings

make_broker(Settings())
from services.worker import actors

sent = []
actors.sync_provider.send = lambda run_id, provider: sent.append([run_id, provider])
actors._send_syncs(3, ["@models", *(f"p{i:03}" for i in range(130))])
planned = sent[:]
sent.clear()

async def fails(ctx, run_id, provider_ids):
    raise RuntimeError("the batch's transaction failed")

async def document(ctx, run_id):
    return run_id == 3

actors.refresh.sync_providers = fails
actors.refresh.syncs_in_batches = document
asyncio.run(actors._sync_batch(None, 3, ["p001", "p002", "p003"]))
split = sent[:]
sent.clear()
actors.refresh.sync_providers = None  # a run from another modelmeta: never synced as a batch
asyncio.run(actors._sync_batch(None, 4, ["p004", "p005"]))
print(json.dumps({"planned": planned, "split": split, "mirror": sent}))
"""


def test_a_plan_is_sent_in_batches_and_a_failed_batch_one_provider_at_a_time() -> None:
    result = run_probe(PROBE)
    planned = result["planned"]
    # The models document alone, and the last one, named as one provider (a string); 130 others
    # in 43 batches of 3 and that one.
    assert planned[0] == [3, "@models"]
    assert planned[-1] == [3, "p129"]
    assert [len(p) for _, p in planned[1:-1]] == [3] * 43
    assert [pid for _, p in planned[1:-1] for pid in p] == [f"p{i:03}" for i in range(129)]
    assert result["split"] == [[3, "p001"], [3, "p002"], [3, "p003"]]
    # A run from another modelmeta: each provider in a message of its own, no batch transaction.
    assert result["mirror"] == [[4, "p004"], [4, "p005"]]
