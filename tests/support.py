"""Helpers for tests: a fake upstream server and catalog comparisons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeUpstream:
    """A local aiohttp server standing in for models.dev; `script` decides each answer."""

    body: bytes = b"{}"
    etag: str | None = None
    script: list[Handler] = field(default_factory=list)
    requests: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        self.requests.append((loop.time(), request.path_qs, dict(request.headers)))
        if self.script:
            return await self.script.pop(0)(request)
        return self.serve_body(request)

    def serve_body(self, request: web.Request) -> web.Response:
        if self.etag and request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304, headers={"ETag": self.etag})
        headers = {"ETag": self.etag} if self.etag else {}
        return web.Response(body=self.body, content_type="application/json", headers=headers)


@asynccontextmanager
async def fake_upstream(body: bytes = b"{}", etag: str | None = None) -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream(body=body, etag=etag)
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", up.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    up.url = f"http://127.0.0.1:{port}/api.json"
    try:
        yield up
    finally:
        await runner.cleanup()


def flat_models(doc: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """(provider_id, model_id) -> model object of a models.dev document."""
    return {(pid, mid): m for pid, p in doc.items() for mid, m in p["models"].items()}


def leaf_diff(old: Any, new: Any, path: str = "") -> dict[str, list[Any]]:
    """An independent field-level diff: objects recurse, anything else is compared whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, list[Any]] = {}
        for k in set(old) | set(new):
            out.update(leaf_diff(old.get(k), new.get(k), f"{path}.{k}" if path else k))
        return out
    if isinstance(old, dict) and new is None:
        return leaf_diff(old, {}, path)
    if isinstance(new, dict) and old is None:
        return leaf_diff({}, new, path)
    return {} if old == new else {path: [old, new]}


@dataclass
class CountingProxy:
    """Forwards every request to `target`, recording when each arrived; `intercept` may answer
    instead (return a response) to fake upstream faults."""

    target: str
    times: list[tuple[float, str, int]] = field(default_factory=list)
    intercept: Callable[[web.Request, int], Awaitable[web.StreamResponse | None]] | None = None
    url: str = ""
    session: Any = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import time

        n = len(self.times)
        arrived = time.time()
        if self.intercept is not None:
            answer = await self.intercept(request, n)
            if answer is not None:
                self.times.append((arrived, request.path_qs, answer.status))
                return answer
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("if-none-match", "authorization")}
        async with self.session.get(self.target + request.path_qs, headers=headers) as r:
            body = await r.read()
            passed = {k: v for k, v in r.headers.items() if k in ("ETag", "X-Catalog-Version", "Content-Type")}
            self.times.append((arrived, request.path_qs, r.status))
            return web.Response(status=r.status, body=body, headers=passed)


@asynccontextmanager
async def counting_proxy(target: str) -> AsyncIterator[CountingProxy]:
    import aiohttp

    proxy = CountingProxy(target=target.rstrip("/"))
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy.url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        proxy.session = session
        try:
            yield proxy
        finally:
            await runner.cleanup()


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """The most events in any window of `width` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(base: str, seconds: float = 20.0) -> None:
    """Wait until a web process at `base` answers GET /readyz with 200."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with session.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{base}/readyz never turned ready")
