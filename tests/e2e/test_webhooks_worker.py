"""Webhook delivery by real worker processes, driven through the CLI: a worker SIGKILLed in the
middle of a delivery, and the delivery made again by another under the same webhook-id."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import asyncpg
import pytest
import standardwebhooks
from aiohttp import web

from shared.config import Settings
from tests.integration.webhook_helpers import receiver
from tests.support import cli, env_for, stop, worker

pytestmark = pytest.mark.slow


async def _delivery(dsn: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow("SELECT status, attempts, last_status_code FROM webhook_deliveries")
    finally:
        await conn.close()


async def test_a_worker_killed_during_a_delivery_is_redelivered_under_the_same_id(
    settings: Settings, tmp_path: Path
) -> None:
    hanging = asyncio.Event()

    async def script(nth: int, request: web.Request) -> web.Response | None:
        if request.headers["webhook-id"] != "msg_1" or nth > 1:
            return None
        hanging.set()  # the first attempt: hold it until the worker is killed
        await asyncio.sleep(30)
        return None

    env = env_for(settings, WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_TIMEOUT="3s", WEBHOOK_RETRY_SCHEDULE="0,1s,1s,2s,5s")
    log = tmp_path / "worker.log"
    async with receiver(script) as r:
        added = await asyncio.to_thread(cli, ["webhooks", "add", r.url, "--provider", "acme", "--json"], env)
        assert added.returncode == 0, added.stderr
        sub = json.loads(added.stdout)
        listed = await asyncio.to_thread(cli, ["webhooks", "list", "--json"], env)
        assert [s["id"] for s in json.loads(listed.stdout)] == [sub["id"]]
        assert sub["secret"] not in listed.stdout and '"secret"' not in listed.stdout

        with worker(env, log, threads=2) as first:
            started = await asyncio.to_thread(cli, ["refresh"], env)
            assert started.returncode == 0, started.stderr
            await asyncio.wait_for(hanging.wait(), 60)
            stop(first, signal.SIGKILL)
        assert len(r.requests) == 1

        with worker(env, log, threads=2):
            for _ in range(600):
                d = await _delivery(settings.database_url)
                if d is not None and d["status"] == "delivered":
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("never delivered again: " + log.read_text()[-3000:])

        assert (d["attempts"], d["last_status_code"]) == (2, 200)
        killed, again = r.requests
        assert again.webhook_id == killed.webhook_id == "msg_1"
        assert again.body == killed.body
        event = standardwebhooks.Webhook(sub["secret"]).verify(again.body, again.headers)
        assert {c["provider_id"] for c in event["data"]["changes"]} == {"acme"}
        assert len(event["data"]["changes"]) == 7

        shown = await asyncio.to_thread(cli, ["webhooks", "deliveries", str(sub["id"]), "--json"], env)
        [delivery] = json.loads(shown.stdout)
        assert (delivery["webhook_id"], delivery["status"], delivery["attempts"]) == ("msg_1", "delivered", 2)

        tested = await asyncio.to_thread(cli, ["webhooks", "test", str(sub["id"])], env)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "delivered, HTTP 200" in tested.stdout
        assert r.requests[-1].json()["type"] == "webhook.test"

        removed = await asyncio.to_thread(cli, ["webhooks", "remove", str(sub["id"])], env)
        assert removed.returncode == 0
        gone = await asyncio.to_thread(cli, ["webhooks", "remove", str(sub["id"])], env)
        assert gone.returncode == 1
    assert sub["secret"] not in log.read_text()


def test_the_cli_refuses_a_private_target(settings: Settings) -> None:
    refused = cli(["webhooks", "add", "http://169.254.169.254/latest/meta-data/"], env_for(settings))
    assert refused.returncode == 1
    assert "link-local" in refused.stderr
