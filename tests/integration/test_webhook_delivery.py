"""Webhook delivery through the real refresh pipeline (PostgreSQL, Redis, a local receiver): every
change of the 2026-03-01 -> 2026-07-02 refresh arrives, signed, exactly once; filters deliver
exactly what they match; a delivery is written once and sent under one webhook-id and one body."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from shared.config import RateLimit, Settings
from shared.embedded import document
from shared.webhooks import outbox
from shared.webhooks.subscriptions import create_subscription
from tests.integration.webhook_helpers import delivery_resources, drain, receiver, sent_ids, stub_broker
from tests.support import fake_upstream, flat_models, leaf_diff, pipeline, refresh_inline

OLD, NEW = document("api-2026-03-01"), document("api-2026-07-02")
FAST = {"webhook_allow_private": True, "webhook_rate_limit": RateLimit(10_000, 1.0), "webhook_concurrency": 16}


def _changes(requests: list[Any]) -> list[dict[str, Any]]:
    out = []
    for r in requests:
        event = r.json()
        assert event["type"] == "catalog.changed"
        assert {c["provider_id"] for c in event["data"]["changes"]} == {event["data"]["provider_id"]}
        assert {c["run_id"] for c in event["data"]["changes"]} == {event["data"]["run_id"]}
        assert 1 <= len(event["data"]["changes"]) <= 100
        out.extend(event["data"]["changes"])
    return out


def _expected_filtered(provider: str) -> set[tuple[str, str, str]]:
    """Independently of the pipeline: the provider's added, removed, and updated-on-cost models."""
    a, b = flat_models(json.loads(OLD)), flat_models(json.loads(NEW))
    out = set()
    for key in a.keys() | b.keys():
        if key[0] != provider:
            continue
        if key not in a:
            out.add((*key, "added"))
        elif key not in b:
            out.add((*key, "removed"))
        elif any(f == "cost" or f.startswith("cost.") for f in leaf_diff(a[key], b[key])):
            out.add((*key, "updated"))
    return out


async def test_every_change_of_a_real_refresh_arrives_signed_once(settings: Settings) -> None:
    with stub_broker() as broker:
        async with (
            fake_upstream(OLD, etag='"v1"') as up,
            pipeline(settings, modelsdev_url=up.url, **FAST) as ctx,
            receiver() as everything,
            receiver() as filtered,
        ):
            assert (await refresh_inline(ctx))["status"] == "succeeded"
            all_sub = await create_subscription(ctx.pool, ctx.settings, url=everything.url)
            some = await create_subscription(
                ctx.pool, ctx.settings, url=filtered.url, providers=["anthropic"], fields=["cost.*"]
            )
            assert sent_ids(broker) == []  # nothing committed since they subscribed

            up.body, up.etag = NEW, '"v2"'
            run = await refresh_inline(ctx)
            assert run["status"] == "succeeded"
            ids = sent_ids(broker)
            async with delivery_resources(ctx) as res:
                outcomes = await drain(res, ids)
                assert Counter(o.status for o in outcomes) == {"delivered": len(ids)}

                # The whole diff, each change once, in the subscription's deliveries.
                got = _changes(everything.requests)
                assert Counter(c["kind"] for c in got) == {"added": 2982, "removed": 759, "updated": 1540}
                assert len({c["seq"] for c in got}) == len(got) == 5281
                logged = await ctx.pool.fetch("SELECT seq FROM model_changes WHERE run_id = $1", run["id"])
                assert {c["seq"] for c in got} == {r["seq"] for r in logged}
                assert len(everything.requests) == 165  # one per provider and 100 changes
                everything.verify_all([all_sub.secret])  # type: ignore[list-item]

                # The filtered subscription: exactly the matching changes.
                got_some = _changes(filtered.requests)
                assert {(c["provider_id"], c["model_id"], c["kind"]) for c in got_some} == _expected_filtered(
                    "anthropic"
                )
                assert len(got_some) == len({c["seq"] for c in got_some}) > 0
                filtered.verify_all([some.secret])  # type: ignore[list-item]

                # Delivered once: planning again or delivering again writes and sends nothing.
                assert await outbox.plan_deliveries(ctx.pool) == []
                assert {o.status for o in await drain(res, ids)} == {"skipped"}
            rows = await ctx.pool.fetchval("SELECT count(*) FROM webhook_deliveries")
            assert rows == len(ids) == 165 + len(filtered.requests)
            for r in (everything, filtered):
                assert all(len(bodies) == 1 for bodies in r.by_id().values())
                assert len(r.by_id()) == len(r.requests)
