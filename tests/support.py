"""What the tests share, in one place: where things are, the services, databases and runs, the
refresh pipeline run inline, fake upstreams, HTTP waits and ports, and modelmeta processes.

Fixtures live in conftest.py and are built from these; test modules import from here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from shared import refresh
from shared.config import Settings
from shared.db import runs
from shared.enums import Trigger
from shared.resources import RefreshContext, close_context, open_context

# --- Where things are ------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
#: The hand-written catalog (5 providers, 28 models) with every field kind models.dev uses.
SAMPLE = ROOT / "tests" / "data" / "catalog.json"
#: The real models.dev catalogs shipped in the package, by their `shared.embedded.document` name.
CATALOG_OLD = "api-2026-03-01"
CATALOG_NEW = "api-2026-07-02"


def run_probe(code: str, *args: str) -> Any:
    """Run `code` in a fresh interpreter from the repository (nothing this process imported or set
    up leaks into it) and decode the JSON of its last line of output; it must exit 0."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- The services ----------------------------------------------------------------------------

ADMIN_DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def need_service(reason: str) -> None:
    """A missing service skips a test locally and fails it in CI."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a modelmeta process needs to use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_", "MODELSDEV_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        REDIS_PREFIX=settings.redis_prefix,
        MODELSDEV_URL=settings.modelsdev_url,
        UPSTREAM_TIMEOUT=str(settings.upstream_timeout),
        UPSTREAM_ATTEMPTS=str(settings.upstream_attempts),
        ADMIN_TOKENS=",".join(settings.admin_tokens),
        LOG_FORMAT="json",
        WORKER_HEARTBEAT_TIMEOUT_MS="3000",
        WORKER_MAINTENANCE_CHANCE="1000000",
        WORKER_METRICS_PORT="0",
    )
    env.update(extra)
    return env


# --- Databases and runs ----------------------------------------------------------------------


def dsn_for(name: str) -> str:
    """The DSN of database `name` on the test server."""
    return urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{name}"))


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


@asynccontextmanager
async def connection(db: str | asyncpg.Pool) -> AsyncIterator[asyncpg.Connection | asyncpg.Pool]:
    """A connection to the database of a DSN (closed afterwards), or the pool itself."""
    if not isinstance(db, str):
        yield db
        return
    conn = await asyncpg.connect(db, timeout=5)
    try:
        yield conn
    finally:
        await conn.close()


async def create_database(name: str, template: str | None = None) -> str:
    """A new database (a copy of `template` when given); its DSN."""
    async with connection(ADMIN_DSN) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return dsn_for(name)


async def drop_database(dsn: str) -> None:
    """Drop the database of `dsn` (if it exists), whoever is still connected."""
    async with connection(ADMIN_DSN) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_name(dsn)}" WITH (FORCE)')


async def run_row(dsn: str, run_id: int | None = None) -> asyncpg.Record | None:
    """Run `run_id` (the latest when None) with its progress (`finished` providers) and duration
    (`seconds`); None when there is no such run or PostgreSQL does not answer (it may be restarting)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        row: asyncpg.Record | None = await conn.fetchrow(
            "SELECT id, status, trigger, error, providers_total, "
            "(SELECT count(*) FROM refresh_provider_runs p WHERE p.run_id = r.id AND p.status <> 'pending') "
            "AS finished, extract(epoch FROM finished_at - requested_at)::float8 AS seconds "
            "FROM refresh_runs r WHERE $1::bigint IS NULL OR id = $1 ORDER BY id DESC LIMIT 1",
            run_id,
        )
    finally:
        await conn.close()
    return row


async def closed_run(dsn: str, run_id: int | None = None) -> asyncpg.Record | None:
    """The run once it has ended (neither queued nor running), else None: a wait_until check."""
    row = await run_row(dsn, run_id)
    return row if row is not None and row["status"] not in ("queued", "running") else None


async def listed(db: str | asyncpg.Pool) -> dict[tuple[str, str], Any]:
    """(provider_id, model_id) -> the upstream object, for every listed (not removed) model."""
    async with connection(db) as conn:
        rows = await conn.fetch("SELECT provider_id, model_id, raw::text FROM models WHERE removed_at IS NULL")
    return {(r[0], r[1]): json.loads(r[2]) for r in rows}


async def duplicate_changes(db: str | asyncpg.Pool) -> int:
    """How many (run, model, kind) the change log holds more than once (a redelivery written twice)."""
    async with connection(db) as conn:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM model_changes GROUP BY run_id, provider_id, model_id, kind "
            "HAVING count(*) > 1) d"
        )
    return n


# --- The refresh pipeline, run inline as the actors would --------------------------------------


@asynccontextmanager
async def pipeline(settings: Settings, **overrides: Any) -> AsyncIterator[RefreshContext]:
    ctx = await open_context(dataclasses.replace(settings, **overrides))
    try:
        yield ctx
    finally:
        await close_context(ctx)


async def refresh_inline(
    ctx: RefreshContext, *, providers: list[str] | None = None, force: bool = False
) -> asyncpg.Record:
    """One whole run: request, plan, sync every provider; return the closed run."""
    run, created = await refresh.request_refresh(ctx.pool, trigger=Trigger.CLI, providers=providers, force=force)
    assert created
    for pid in await refresh.plan_refresh(ctx, run["id"]):
        await refresh.sync_provider(ctx, run["id"], pid)
    final = await runs.get_run(ctx.pool, run["id"])
    assert final is not None
    return final


# --- Catalog comparisons -----------------------------------------------------------------------


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


# --- Fake upstreams ----------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def local_server(handler: Handler) -> AsyncIterator[str]:
    """An aiohttp server on a free local port answering every GET with `handler`; its base URL."""
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass
class FakeUpstream:
    """A local aiohttp server standing in for models.dev; `script` decides each answer."""

    body: bytes = b"{}"
    etag: str | None = None
    script: list[Handler] = field(default_factory=list)
    requests: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    #: models.dev's /models.json beside the catalog (None: 404, as an upstream without one answers).
    models_body: bytes | None = None
    models_etag: str | None = None
    models_status: int = 200  # another status: the models document answers only that
    models_requests: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        if request.path == "/models.json":  # the models document has its own answers and log
            self.models_requests.append((loop.time(), request.path_qs, dict(request.headers)))
            if self.models_status != 200:
                return web.Response(status=self.models_status, text="failing on purpose")
            if self.models_body is None:
                return web.Response(status=404, text="not found")
            if self.models_etag and request.headers.get("If-None-Match") == self.models_etag:
                return web.Response(status=304, headers={"ETag": self.models_etag})
            headers = {"ETag": self.models_etag} if self.models_etag else {}
            return web.Response(body=self.models_body, content_type="application/json", headers=headers)
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
    async with local_server(up.handle) as base:
        up.url = f"{base}/api.json"
        yield up


@dataclass
class CountingProxy:
    """Forwards every request to `target`, recording when each arrived; `intercept` may answer
    instead (return a response) to fake upstream faults."""

    target: str
    times: list[tuple[float, str, int]] = field(default_factory=list)
    intercept: Callable[[web.Request, int], Awaitable[web.StreamResponse | None]] | None = None
    url: str = ""
    session: Any = None
    #: Requests that have arrived (answered or not): concurrent requests each get their own number.
    arrivals: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        n, self.arrivals = self.arrivals, self.arrivals + 1
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
    proxy = CountingProxy(target=target.rstrip("/"))
    async with aiohttp.ClientSession() as session, local_server(proxy.handle) as base:
        proxy.session, proxy.url = session, base
        yield proxy


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """The most events in any window of `width` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


# --- Waits and ports ---------------------------------------------------------------------------


async def wait_until(check: Callable[[], Any], seconds: float, interval: float = 0.05, what: str = "") -> Any:
    """Call `check` (a function or a coroutine function) until it returns something true; return it.
    Raise AssertionError saying `what` was awaited when `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"{what or 'condition'} not met within {seconds}s")


async def wait_ready(base: str, seconds: float = 20.0, path: str = "/readyz") -> None:
    """Wait until a web process at `base` answers GET `path` with 200 (/healthz: the process is up;
    /readyz: PostgreSQL and Redis reachable and a catalog loaded)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:

        async def answers() -> bool:
            try:
                async with session.get(base + path) as r:
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await wait_until(answers, seconds, 0.1, f"{base}{path} answering 200")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(offsets: tuple[int, ...] = (0, 100, 200)) -> int:
    """A base port such that base + each offset is free (honcho gives process i the port base + 100 i)."""
    for attempt in range(50):
        base = 20000 + (os.getpid() * 7 + int(time.time() * 1000) + attempt * 997) % 30000
        taken = False
        for offset in offsets:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + offset))
                except OSError:
                    taken = True
        if not taken:
            return base
    raise RuntimeError("no free block of ports")


# --- modelmeta processes -----------------------------------------------------------------------

MODELMETA = [sys.executable, "-m", "services.cli"]
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    """process name -> command, from the Procfile."""
    out = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            out[name.strip()] = command.strip()
    return out


def procfile_argv(name: str) -> list[str]:
    """A Procfile command as argv, with `modelmeta` resolved in this environment."""
    argv = procfile()[name].split()
    assert argv[0] == "modelmeta", argv
    return [str(BIN / "modelmeta"), *argv[1:]]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process in its own session (so the whole group can be signalled), logging to a file."""
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Signal the process and wait; SIGKILL its whole group if it is still there after the timeout."""
    if proc.poll() is None:
        try:
            # SIGTERM to the leader only (it stops its children itself); SIGKILL to the whole group.
            if sig == signal.SIGKILL:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(5)


@contextmanager
def worker(env: dict[str, str], log: Path, threads: int = 4) -> Iterator[subprocess.Popen[bytes]]:
    proc = start([*MODELMETA, "worker", "--threads", str(threads)], env, log)
    try:
        yield proc
    finally:
        stop(proc)


@asynccontextmanager
async def web_process(
    env: dict[str, str], log: Path, ready: str = "/readyz", seconds: float = 30.0
) -> AsyncIterator[str]:
    """The Procfile's web process on a free port, once it answers `ready` with 200; its base URL."""
    port = free_port()
    proc = start(procfile_argv("web"), {**env, "PORT": str(port)}, log)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, seconds, ready)
        yield base
    finally:
        stop(proc)


@contextmanager
def web_process_sync(env: dict[str, str], log: Path, ready: str = "/readyz", seconds: float = 30.0) -> Iterator[str]:
    """web_process for synchronous code (module-scoped fixtures): the same process and wait."""
    port = free_port()
    proc = start(procfile_argv("web"), {**env, "PORT": str(port)}, log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(base + ready, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{base}{ready} never turned ready")
            time.sleep(0.1)
        yield base
    finally:
        stop(proc)


def cli(args: list[str], env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODELMETA, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def matches_search(doc: dict[str, Any], pid: str, mid: str, q: str) -> bool:
    """The API's `q`, read independently from a models.dev document: every word of the query (runs
    of letters, digits, `.` and `-`) is a substring of the model's id, name, family or provider name."""
    m = doc[pid]["models"][mid]
    text = f"{pid}/{mid} {m['name']} {m.get('family') or ''} {doc[pid]['name']}".lower()
    return all(word in text for word in re.findall(r"[\w.-]+", q.lower()) or [q.lower()])
