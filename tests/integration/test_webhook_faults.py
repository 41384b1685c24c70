"""Delivery when receivers misbehave (compressed retry schedule): retries until a 2xx, a receiver
down through a whole refresh, 410, Retry-After, timeouts, redirects, the schedule running out,
three days of failure, and targets refused by address at delivery time."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest
from aiohttp import web

from shared.config import RateLimit, Settings
from shared.errors import RateLimited
from shared.webhooks import outbox
from shared.webhooks.delivery import deliver
from shared.webhooks.subscriptions import create_subscription
from tests.integration.webhook_helpers import delivery_resources, drain, receiver, sent_ids, stub_broker
from tests.support import pipeline, refresh_inline

QUICK = {
    "webhook_allow_private": True,
    "webhook_rate_limit": RateLimit(10_000, 1.0),
    "webhook_retry_schedule": (0.0, 0.1, 0.1, 0.2, 0.3),
    "webhook_timeout": 1.0,
}
SAMPLE_CHANGES = 28  # the sample catalog's models, in 5 providers


async def _status(request: web.Request, status: int, **headers: str) -> web.Response:
    return web.Response(status=status, text="nope", headers=headers)


async def test_500_three_times_then_200_is_delivered_with_its_attempts(settings: Settings) -> None:
    async def script(nth: int, request: web.Request) -> web.Response | None:
        return await _status(request, 500) if nth <= 3 else None

    with stub_broker() as broker:
        async with receiver(script) as r, pipeline(settings, **QUICK) as ctx:
            sub = await create_subscription(ctx.pool, ctx.settings, url=r.url)
            await refresh_inline(ctx)
            ids = sent_ids(broker)
            async with delivery_resources(ctx) as res:
                assert {o.status for o in await drain(res, ids)} == {"delivered"}
            rows = await ctx.pool.fetch("SELECT * FROM webhook_deliveries ORDER BY id")
            assert [(d["status"], d["attempts"], d["last_status_code"]) for d in rows] == [("delivered", 4, 200)] * 5
            assert len(r.requests) == 5 * 4
            # Every attempt of a delivery: the same webhook-id, the same body, a valid signature.
            assert all(len(bodies) == 1 for bodies in r.by_id().values())
            r.verify_all([sub.secret])  # type: ignore[list-item]
            seqs = {c["seq"] for q in r.requests for c in q.json()["data"]["changes"]}
            assert len(seqs) == SAMPLE_CHANGES


async def test_a_receiver_down_through_the_whole_refresh_gets_everything_on_retry(settings: Settings) -> None:
    quick = {**QUICK, "webhook_retry_schedule": (0.0, 0.3, 0.5, 1.0, 1.0, 2.0, 2.0)}
    with stub_broker() as broker:
        async with receiver() as r, pipeline(settings, **quick) as ctx:
            await create_subscription(ctx.pool, ctx.settings, url=r.url)
            await r.stop()  # down: connections are refused
            await refresh_inline(ctx)
            ids = sent_ids(broker)
            async with delivery_resources(ctx) as res:
                draining = asyncio.create_task(drain(res, ids))
                await asyncio.sleep(1.2)
                assert r.requests == []
                failing = await ctx.pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE attempts >= 2")
                assert failing == len(ids) == 5
                await r.start()  # back, on the same port
                assert {o.status for o in await asyncio.wait_for(draining, 30)} == {"delivered"}
            errors = await ctx.pool.fetch("SELECT attempts, last_error FROM webhook_deliveries")
            assert all(e["attempts"] >= 3 and e["last_error"] is None for e in errors)
            assert len({c["seq"] for q in r.requests for c in q.json()["data"]["changes"]}) == SAMPLE_CHANGES
            failing_since = await ctx.pool.fetchval("SELECT failing_since FROM webhook_subscriptions")
            assert failing_since is None  # the success ended the failure streak


async def test_410_disables_the_subscription(settings: Settings) -> None:
    async def gone(nth: int, request: web.Request) -> web.Response:
        return await _status(request, 410)

    with stub_broker() as broker:
        async with receiver(gone) as r, pipeline(settings, **QUICK) as ctx:
            sub = await create_subscription(ctx.pool, ctx.settings, url=r.url)
            await refresh_inline(ctx)
            ids = sent_ids(broker)
            async with delivery_resources(ctx) as res:
                first = await deliver(res, ids[0])
                assert first.status == "gone"
                assert {o.status for o in await drain(res, ids[1:])} == {"skipped"}
            s = await ctx.pool.fetchrow("SELECT * FROM webhook_subscriptions WHERE id = $1", sub.id)
            assert s["status"] == "disabled"
            assert "410" in s["disabled_reason"]
            statuses = await ctx.pool.fetch("SELECT status, last_status_code FROM webhook_deliveries ORDER BY id")
            assert [d["status"] for d in statuses] == ["failed"] * 5
            assert statuses[0]["last_status_code"] == 410
            assert len(r.requests) == 1  # nothing after the 410
            # Later commits are not planned for it.
            await refresh_inline(ctx, force=True)
            assert await outbox.plan_deliveries(ctx.pool) == []


async def test_retry_after_is_honoured(settings: Settings) -> None:
    async def busy(nth: int, request: web.Request) -> web.Response | None:
        return await _status(request, 429, **{"Retry-After": "2"}) if nth == 1 else None

    with stub_broker() as broker:
        async with receiver(busy) as r, pipeline(settings, **QUICK) as ctx:
            await create_subscription(ctx.pool, ctx.settings, url=r.url, providers=["acme"])
            await refresh_inline(ctx)
            [delivery_id] = sent_ids(broker)
            async with delivery_resources(ctx) as res:
                first = await deliver(res, delivery_id)
                assert first.status == "retrying"
                assert first.retry_in is not None and first.retry_in >= 2.0
                early = await deliver(res, delivery_id)  # a message that came back too soon
                assert early.status == "waiting"
                assert early.retry_in is not None and early.retry_in > 1.5
                await drain(res, [delivery_id])
            gap = r.requests[1].at - r.requests[0].at
            assert gap >= 1.9, gap


async def test_timeouts_redirects_and_big_answers_are_failures(settings: Settings) -> None:
    answers: dict[str, Any] = {
        "slow": lambda: asyncio.sleep(3),
        "redirect": lambda: _status_coro(302, Location="/elsewhere"),
        "big": lambda: _big(),
    }

    async def script(nth: int, request: web.Request) -> web.StreamResponse | None:
        result = await answers[request.query["case"]]()
        return result if isinstance(result, web.StreamResponse) else None

    with stub_broker() as broker:
        async with receiver(script) as r, pipeline(settings, **{**QUICK, "webhook_retry_schedule": (0.0,)}) as ctx:
            for case in answers:
                await create_subscription(ctx.pool, ctx.settings, url=f"{r.url}?case={case}", providers=["acme"])
            await refresh_inline(ctx)
            async with delivery_resources(ctx) as res:
                started = time.monotonic()
                assert {o.status for o in await drain(res, sent_ids(broker))} == {"failed"}
                assert time.monotonic() - started < 3
            rows = await ctx.pool.fetch(
                "SELECT s.url, d.last_status_code, d.last_error FROM webhook_deliveries d "
                "JOIN webhook_subscriptions s ON s.id = d.subscription_id"
            )
            errors = {row["url"].rsplit("=", 1)[1]: (row["last_status_code"], row["last_error"]) for row in rows}
            assert errors["slow"] == (None, "timed out after 1s")
            assert errors["redirect"][0] == 302
            assert errors["big"][0] == 500 and len(errors["big"][1]) < 400
            assert all(q.path == "/hook" for q in r.requests)  # the redirect was not followed


async def _status_coro(status: int, **headers: str) -> web.Response:
    return web.Response(status=status, headers=headers)


async def _big() -> web.Response:
    return web.Response(status=500, body=b"x" * 5_000_000)


async def test_a_spent_schedule_fails_the_delivery_and_replay_sends_it_again(settings: Settings) -> None:
    down = True

    async def script(nth: int, request: web.Request) -> web.Response | None:
        return await _status(request, 503) if down else None

    with stub_broker() as broker:
        async with receiver(script) as r, pipeline(settings, **QUICK) as ctx:
            sub = await create_subscription(ctx.pool, ctx.settings, url=r.url)
            await refresh_inline(ctx)
            first_seq = await ctx.pool.fetchval("SELECT min(seq) FROM model_changes")
            async with delivery_resources(ctx) as res:
                assert {o.status for o in await drain(res, sent_ids(broker))} == {"failed"}
                rows = await ctx.pool.fetch("SELECT status, attempts FROM webhook_deliveries")
                assert {(d["status"], d["attempts"]) for d in rows} == {
                    ("failed", len(QUICK["webhook_retry_schedule"]))
                }
                down = False
                result = await outbox.replay(ctx.pool, ctx.sender.deliver_changes, sub.id, first_seq - 1)
                assert result is not None and result.deliveries == 5
                again = sent_ids(broker)
                assert {o.status for o in await drain(res, again)} == {"delivered"}
            delivered = [q for q in r.requests if q.webhook_id in {f"msg_{i}" for i in again}]
            assert len({c["seq"] for q in delivered for c in q.json()["data"]["changes"]}) == SAMPLE_CHANGES
            old_ids = {q.webhook_id for q in r.requests} - {f"msg_{i}" for i in again}
            assert len(old_ids) == 5  # a replay is a new delivery under a webhook-id of its own


async def test_three_days_of_failure_disable_the_subscription(settings: Settings) -> None:
    async def broken(nth: int, request: web.Request) -> web.Response:
        return await _status(request, 500)

    with stub_broker() as broker:
        async with receiver(broken) as r, pipeline(settings, **QUICK) as ctx:
            sub = await create_subscription(ctx.pool, ctx.settings, url=r.url, providers=["acme"])
            await refresh_inline(ctx)
            await ctx.pool.execute(
                "UPDATE webhook_subscriptions SET failing_since = now() - interval '3 days 1 minute'"
            )
            async with delivery_resources(ctx) as res:
                outcome = await deliver(res, sent_ids(broker)[0])
            assert outcome.status == "failed"
            s = await ctx.pool.fetchrow(
                "SELECT status, disabled_reason FROM webhook_subscriptions WHERE id = $1", sub.id
            )
            assert s["status"] == "disabled"
            assert s["disabled_reason"].startswith("failing continuously since ")
            assert "HTTP 500" in s["disabled_reason"]
            assert len(r.requests) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "http://localhost:{port}/hook"])
async def test_a_private_target_is_refused_again_at_delivery_time(settings: Settings, url: str) -> None:
    with stub_broker() as broker:
        async with receiver() as r, pipeline(settings, **QUICK) as ctx:
            await create_subscription(ctx.pool, ctx.settings, url=url.format(port=r.port), providers=["acme"])
            await refresh_inline(ctx)
            strict = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, webhook_allow_private=False))
            async with delivery_resources(strict) as res:
                outcome = await deliver(res, sent_ids(broker)[0])
            assert outcome.status == "retrying"
            error = await ctx.pool.fetchval("SELECT last_error FROM webhook_deliveries")
            assert error.startswith("refused: ") and "loopback" in error
            assert r.requests == []


async def test_per_receiver_rate_and_concurrency_limits(settings: Settings) -> None:
    in_flight, most = 0, 0

    async def slow(nth: int, request: web.Request) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.2)
        in_flight -= 1

    limits = {**QUICK, "webhook_concurrency": 1}
    with stub_broker() as broker:
        async with receiver(slow) as r, pipeline(settings, **limits) as ctx:
            await create_subscription(ctx.pool, ctx.settings, url=r.url)
            await refresh_inline(ctx)
            ids = sent_ids(broker)
            async with delivery_resources(ctx) as res:
                assert {o.status for o in await drain(res, ids, concurrency=5)} == {"delivered"}
            assert len(r.requests) == 5
            assert most == 1  # one request at a time to this receiver, across all the "workers"

            # A spent rate budget: no attempt is made or counted, the caller is told to come back.
            await ctx.pool.execute("UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now()")
            # The first part's grants would count against the new budget until their window (about a
            # second) expires: start the new budget from an empty window, whatever the timing.
            async for key in ctx.redis.scan_iter(f"{ctx.settings.redis_prefix}:ratelimit:*"):
                await ctx.redis.delete(key)
            spent = dataclasses.replace(
                ctx, settings=dataclasses.replace(ctx.settings, webhook_rate_limit=RateLimit(1, 60))
            )
            async with delivery_resources(spent) as res:
                assert (await deliver(res, ids[0])).status == "delivered"
                with pytest.raises(RateLimited):
                    await deliver(res, ids[1])
            row = await ctx.pool.fetchrow(
                "SELECT status, attempts, lease_until FROM webhook_deliveries WHERE id = $1", ids[1]
            )
            assert (row["status"], row["attempts"], row["lease_until"]) == ("pending", 1, None)
            assert len(r.requests) == 6
