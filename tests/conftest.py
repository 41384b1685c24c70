"""Fixtures: a fresh migrated PostgreSQL database and a private Redis key prefix per test, the
sample loaded behind an API client; the `slow` marker on every test that starts processes; and
in CI, a run with a skipped test fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from services.api.main import create_app
from shared.config import Settings
from tests.support import (
    ADMIN_DSN,
    ADMIN_TOKEN,
    IN_CI,
    REDIS_URL,
    SAMPLE,
    create_database,
    drop_database,
    dsn_for,
    need_service,
    pipeline,
    refresh_inline,
)

E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every end-to-end test starts processes: mark it slow (`make test-fast` leaves them out)."""
    for item in items:
        if E2E in Path(item.fspath).parents:
            item.add_marker(pytest.mark.slow)


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may skip: a skipped test is a test that did not run, so the run fails."""
    if IN_CI and _skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if IN_CI and _skipped:
        terminalreporter.section("skipped in CI", red=True)
        terminalreporter.line(f"CI=true: {len(_skipped)} skipped test(s) fail this run:", red=True)
        for line in _skipped:
            terminalreporter.line(f"  {line}", red=True)


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    """A database migrated once per test session, cloned for every test."""
    from migrations import migrate

    name = f"mm_tmpl_{uuid.uuid4().hex[:10]}"

    async def setup() -> None:
        await migrate(await create_database(name))

    try:
        asyncio.run(setup())
    except (OSError, asyncpg.PostgresError) as e:
        need_service(f"PostgreSQL not reachable at {ADMIN_DSN}: {e}")
    yield name
    asyncio.run(drop_database(dsn_for(name)))


@pytest.fixture
async def database_url(template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    dsn = await create_database(f"mm_test_{uuid.uuid4().hex[:12]}", template=template_db)
    yield dsn
    await drop_database(dsn)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own, deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as e:
        need_service(f"Redis not reachable at {REDIS_URL}: {e}")
    prefix = f"mmtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def settings(database_url: str, redis_prefix: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        modelsdev_url=f"file://{SAMPLE}",
        upstream_timeout=2.0,
        upstream_attempts=2,
        admin_tokens=(ADMIN_TOKEN,),
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """An API client on the sample catalog; `client.sent` lists the run ids the app enqueued."""
    async with pipeline(settings) as ctx:
        await refresh_inline(ctx)
    sent: list[int] = []
    async with TestClient(TestServer(create_app(settings, enqueue=sent.append))) as c:
        c.sent = sent  # type: ignore[attr-defined]
        yield c
