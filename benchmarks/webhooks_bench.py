"""Webhook benchmark: 200 subscriptions, each to everything, through the 2026-03-01 -> 2026-07-02
refresh (5,281 changes in 145 providers: 165 deliveries of up to 100 changes per subscription,
33,000 in all), delivered by `modelmeta worker` processes to 200 local receivers.

Figures: the refresh with the subscriptions beside the same refresh without any (the planning and
sending cost), the time from the run's close until the last delivery is acknowledged, deliveries
per second beside a floor (one process POSTing the same number of signed 100-change bodies with
aiohttp, no queue and no database), the commit-to-first-attempt latency, and worker memory.

    python benchmarks/webhooks_bench.py [--subscriptions 200] [--processes 2] [--threads 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web

from benchmarks.common import bench_env, peak_rss_mib, table, timed_refresh, worker_processes, write_results
from shared.config import Settings
from shared.db.pool import create_pool
from shared.embedded import document
from shared.logging import configure_logging


class Receivers:
    """One aiohttp app listening on many ports: each port a receiver; counts what arrives."""

    def __init__(self) -> None:
        self.bodies: dict[str, int] = {}  # webhook-id -> hash of its body
        self.conflicts = 0
        self.requests = 0
        self.last_at = 0.0
        self.urls: list[str] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id, digest = request.headers.get("webhook-id", ""), hash(body)
        if self.bodies.setdefault(msg_id, digest) != digest:
            self.conflicts += 1
        self.requests += 1
        self.last_at = time.time()
        return web.Response(text="ok")

    async def start(self, count: int) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        for _ in range(count):
            site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            self.urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook")  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _refresh(pool: Any, send: Any, catalog: Path, name: str) -> Any:
    catalog.write_bytes(document(name))
    seconds, run = await timed_refresh(pool, send)
    assert run["status"] == "succeeded", (name, run["status"], run["error"])
    return seconds, run


async def _wait_delivered(pool: Any, expected: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
        if done >= expected:
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"only {done} of {expected} deliveries acknowledged within {within:.0f} s")


async def _figures(pool: Any, run_id: int) -> dict[str, float]:
    row = await pool.fetchrow(
        """
        SELECT extract(epoch FROM max(d.delivered_at) - (SELECT finished_at FROM refresh_runs WHERE id = $1))
                   AS close_to_last,
               extract(epoch FROM max(d.delivered_at) - min(d.first_attempt_at)) AS span,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.first_attempt_at - d.committed_at))
                   AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM d.first_attempt_at - d.committed_at))
                   AS p95,
               count(*) AS n, sum(d.attempts) AS attempts
        FROM webhook_deliveries d WHERE d.run_id = $1
        """,
        run_id,
    )
    return {k: float(v) for k, v in dict(row).items()}


async def _floor(pool: Any, urls: list[str], count: int, concurrency: int) -> float:
    """One process, one session: `count` signed POSTs of a real 100-change body, no queue, no DB."""
    from shared.db import webhooks as db
    from shared.webhooks.payload import changed_body
    from shared.webhooks.signing import new_secret, webhook_headers

    rows = await db.changes_in_range(pool, 0, 10**12, 100)
    body = changed_body(rows[0]["at"], rows[0]["run_id"], rows[0]["provider_id"], rows)
    secret, queue = new_secret(), iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def post() -> None:
            for i in queue:
                headers = webhook_headers([secret], f"floor_{i}", int(time.time()), body)
                async with session.post(urls[i % len(urls)], data=body, headers=headers) as r:
                    await r.read()
                    assert r.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


async def bench(subscriptions: int, processes: int, threads: int) -> list[tuple[str, str, str, str]]:
    workdir = Path(tempfile.mkdtemp(prefix="mm-webhooks-bench-"))
    catalog = workdir / "api.json"
    env_extra = {"MODELSDEV_URL": f"file://{catalog}", "WEBHOOK_ALLOW_PRIVATE": "true"}
    receivers = Receivers()
    await receivers.start(subscriptions)
    async with bench_env(**env_extra) as (dsn, env):
        from shared.sender import Sender
        from shared.webhooks.subscriptions import create_subscription

        configure_logging("warning")  # after the broker module, which configures it from the environment

        settings = Settings.from_env()
        # Enqueue as the web process does (the actors are the worker's: importing them here binds
        # them to no broker the workers read).
        plan_refresh = Sender.from_settings(settings).plan_refresh
        pool = await create_pool(dsn, min_size=1, max_size=4)
        with worker_processes(env, processes, threads) as procs:
            await asyncio.sleep(4)  # let the workers boot
            await _refresh(pool, plan_refresh, catalog, "api-2026-03-01")
            plain_s, _ = await _refresh(pool, plan_refresh, catalog, "api-2026-07-02")  # no subscription yet
            await _refresh(pool, plan_refresh, catalog, "api-2026-03-01")  # back, for the same diff again
            for url in receivers.urls:
                await create_subscription(pool, settings, url=url)
            with_s, run = await _refresh(pool, plan_refresh, catalog, "api-2026-07-02")
            expected = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE run_id = $1", run["id"])
            await _wait_delivered(pool, expected, 1800)
            memory = [peak_rss_mib(p.pid) for p in procs]
        f = await _figures(pool, run["id"])
        ids, requests, conflicts = len(receivers.bodies), receivers.requests, receivers.conflicts
        floor = await _floor(pool, receivers.urls, int(f["n"]), processes * threads)
        await pool.close()
    await receivers.stop()
    changes = run["added"] + run["updated"] + run["removed"]
    rate = f["n"] / f["span"]
    print(f"cores: {os.cpu_count()}; workers: {processes} processes x {threads} threads; {subscriptions} subscriptions")
    print(f"run {run['id']}: {changes} changes; {int(f['n'])} deliveries, {int(f['attempts'])} attempts")
    print(f"receivers: {requests} requests, {ids} webhook-ids, {conflicts} with two bodies")
    assert conflicts == 0
    assert int(f["n"]) == expected == ids
    return [
        (
            f"refresh 03-01 -> 07-02 ({changes:,} changes) with {subscriptions} subscriptions, enqueue to run closed",
            f"{with_s:.2f} s",
            f"{plain_s:.2f} s (the same refresh, no subscription)",
            f"{with_s / plain_s:.2f}x",
        ),
        (
            f"{int(f['n']):,} deliveries ({subscriptions} x {int(f['n']) // subscriptions}): run closed to last one "
            f"acknowledged, {processes} workers x {threads} threads",
            f"{f['close_to_last']:.1f} s",
            "",
            "",
        ),
        (
            "delivery rate, first attempt to last acknowledgement",
            f"{rate:,.0f} deliveries/s",
            f"{floor:,.0f} POST/s (one process, aiohttp, no queue, no database)",
            f"{rate / floor:.0%}",
        ),
        ("commit to first attempt", f"p50 {f['p50']:.2f} s, p95 {f['p95']:.2f} s", "", ""),
        (
            "worker peak memory",
            " / ".join(f"{m:.0f} MiB" for m in memory),
            "1024 MiB (limit)",
            f"{max(memory) / 1024:.2f}x",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscriptions", type=int, default=200)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()
    rows = asyncio.run(bench(args.subscriptions, args.processes, args.threads))
    print(table(rows))
    write_results("5-webhooks", rows)


if __name__ == "__main__":
    main()
