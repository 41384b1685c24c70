"""The outbox: planning is idempotent and survives a crash or a lost message; the stalled-work
sweep plans what was missed and sends again what no worker holds."""

from __future__ import annotations

from shared.config import Settings
from shared.webhooks import outbox
from shared.webhooks.subscriptions import create_subscription
from tests.integration.webhook_helpers import no_broker, sent_ids, stub_broker
from tests.support import pipeline, refresh_inline


async def test_the_sweep_plans_what_a_crash_left_and_resends_what_nobody_holds(settings: Settings) -> None:
    with stub_broker() as broker:
        async with pipeline(settings, webhook_allow_private=True) as ctx:
            sub = await create_subscription(ctx.pool, ctx.settings, url="http://127.0.0.1:9/hook")
            await refresh_inline(ctx)
            planned = sorted(sent_ids(broker))
            assert len(planned) == 5

            # Nothing is stale yet: the sweep sends nothing.
            assert await outbox.sweep_deliveries(ctx.pool, ctx.sender.deliver_changes, idle_seconds=60) == 0
            assert sent_ids(broker) == []

            # Messages lost (a Redis restart, say) an hour ago; one delivery held by a live worker.
            await ctx.pool.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 hour', "
                "sent_at = now() - interval '1 hour'"
            )
            await ctx.pool.execute(
                "UPDATE webhook_deliveries SET lease_until = now() + interval '1 minute' WHERE id = $1", planned[0]
            )
            assert await outbox.sweep_deliveries(ctx.pool, ctx.sender.deliver_changes, idle_seconds=60) == 4
            assert sorted(sent_ids(broker)) == planned[1:]
            # Sent again just now: not again on the next sweep.
            assert await outbox.sweep_deliveries(ctx.pool, ctx.sender.deliver_changes, idle_seconds=60) == 0

            # A worker died between its commit and planning: the changes are in the log, unplanned.
            await ctx.pool.execute("DELETE FROM webhook_deliveries")
            await ctx.pool.execute("UPDATE webhook_subscriptions SET cursor_seq = 0 WHERE id = $1", sub.id)
            await outbox.sweep_deliveries(ctx.pool, ctx.sender.deliver_changes, idle_seconds=60)
            assert len(sent_ids(broker)) == 5
            assert await ctx.pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 5
            # Planned once: planning again writes nothing.
            assert await outbox.plan_deliveries(ctx.pool) == []


async def test_a_failed_send_leaves_the_commit_and_the_rows_for_the_sweep(settings: Settings) -> None:
    def broken(delivery_id: int) -> None:
        raise ConnectionError("Redis is away")

    async with pipeline(settings, webhook_allow_private=True) as ctx:
        await create_subscription(ctx.pool, ctx.settings, url="http://127.0.0.1:9/hook")
        with no_broker():  # every send fails
            await refresh_inline(ctx)
        assert await ctx.pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'") == 5
        assert (await ctx.pool.fetchrow("SELECT status FROM refresh_runs"))["status"] == "succeeded"
        assert await outbox.enqueue_deliveries(ctx.pool, broken) == 0  # nothing new, and it does not raise
        await ctx.pool.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 hour', "
            "sent_at = now() - interval '1 hour'"
        )
        with stub_broker() as broker:
            assert await outbox.sweep_deliveries(ctx.pool, ctx.sender.deliver_changes, idle_seconds=60) == 5
            assert len(sent_ids(broker)) == 5
