"""Helpers for the change-notification tests: a fake receiver, a stub broker that collects the
deliveries the pipeline's senders send, and an in-process stand-in for the delivery workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import dramatiq
import msgspec
import standardwebhooks
from aiohttp import web
from dramatiq.brokers.stub import StubBroker

from shared.errors import RateLimited
from shared.resources import RefreshContext
from shared.sender import DELIVER_CHANGES, ActorRef, Sender
from shared.webhooks.delivery import DeliveryResources, Outcome, close_delivery_resources, deliver
from shared.webhooks.delivery import open_delivery_resources as _open

#: (request number for this webhook-id, request) -> the answer, or None for 200.
Script = Callable[[int, web.Request], Awaitable[web.StreamResponse | None]]


@dataclass
class Received:
    """One request a receiver got."""

    webhook_id: str
    timestamp: str
    signature: str
    body: bytes
    path: str
    at: float

    @property
    def headers(self) -> dict[str, str]:
        return {"webhook-id": self.webhook_id, "webhook-timestamp": self.timestamp, "webhook-signature": self.signature}

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@dataclass
class Receiver:
    """A local webhook receiver; `script` decides each answer (200 by default)."""

    script: Script | None = None
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        h = request.headers
        got = Received(h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], body, request.path, time.time())
        self.requests.append(got)
        nth = sum(1 for r in self.requests if r.webhook_id == got.webhook_id)
        answer = await self.script(nth, request) if self.script else None
        return answer or web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def by_id(self) -> dict[str, set[bytes]]:
        """webhook-id -> the distinct bodies sent under it."""
        out: dict[str, set[bytes]] = {}
        for r in self.requests:
            out.setdefault(r.webhook_id, set()).add(r.body)
        return out

    def verify_all(self, secrets: list[str]) -> None:
        """Every request's signature verifies with one of the secrets (standardwebhooks)."""
        for r in self.requests:
            errors = []
            for s in secrets:
                try:
                    standardwebhooks.Webhook(s).verify(r.body, r.headers)
                    break
                except standardwebhooks.webhooks.WebhookVerificationError as e:
                    errors.append(e)
            else:
                raise AssertionError(f"{r.webhook_id}: no secret verifies it: {errors}")


@asynccontextmanager
async def receiver(script: Script | None = None) -> AsyncIterator[Receiver]:
    r = Receiver(script)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@contextmanager
def stub_broker() -> Iterator[StubBroker]:
    """While inside, every Sender sends to a StubBroker (what the pipeline sends lands in it)."""
    broker = StubBroker(middleware=[])
    broker.declare_queue(DELIVER_CHANGES.queue_name)
    stub, real = Sender(broker), Sender.send

    def send(self: Sender, actor: ActorRef, *args: Any) -> dramatiq.Message[None]:
        return real(stub, actor, *args)

    with mock.patch.object(Sender, "send", send):
        yield broker


@contextmanager
def no_broker() -> Iterator[None]:
    """While inside, every Sender's send fails (Redis away)."""

    def send(self: Sender, actor: ActorRef, *args: Any) -> dramatiq.Message[None]:
        raise ConnectionError("no broker to send through")

    with mock.patch.object(Sender, "send", send):
        yield


def sent_ids(broker: StubBroker) -> list[int]:
    """The delivery ids sent so far (taken off the queue)."""
    q, out = broker.queues[DELIVER_CHANGES.queue_name], []
    while not q.empty():
        out.append(int(dramatiq.Message.decode(q.get_nowait()).args[0]))
    return out


@asynccontextmanager
async def delivery_resources(ctx: RefreshContext) -> AsyncIterator[DeliveryResources]:
    res = await _open(ctx.settings, ctx.pool, ctx.redis)
    try:
        yield res
    finally:
        await close_delivery_resources(res)


async def drain(res: DeliveryResources, ids: list[int], concurrency: int = 8) -> list[Outcome]:
    """What the workers would do: deliver each, coming back when told to, until each is done."""
    gate = asyncio.Semaphore(concurrency)

    async def one(delivery_id: int) -> Outcome:
        while True:
            async with gate:
                try:
                    outcome = await deliver(res, delivery_id)
                except RateLimited as e:
                    outcome = Outcome("limited", e.delay)
            if outcome.retry_in is None:
                return outcome
            await asyncio.sleep(outcome.retry_in)

    return list(await asyncio.gather(*(one(i) for i in ids)))
