"""Fixtures: a fresh migrated PostgreSQL database and a private Redis key prefix per test."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[1]
#: The team's reference folder beside the repository (read-only; absent on some machines).
REFERENCE = ROOT.parent / "shared"
CATALOG_OLD = REFERENCE / "data" / "modelsdev" / "api-2026-03-01.json"
CATALOG_NEW = REFERENCE / "data" / "modelsdev" / "api-2026-07-02.json"
SAMPLE = ROOT / "shared" / "sample" / "catalog.json"

ADMIN_DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_service(reason: str) -> None:
    """A missing service skips a test locally and fails it in CI."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def reference_catalog(path: Path) -> bytes:
    """A real models.dev catalog from ../shared, or a skip saying why it is missing."""
    if not path.exists():
        pytest.skip(f"{path.name} not found: the team's reference folder ../shared is absent")
    return path.read_bytes()


def load_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _dsn_for(db: str) -> str:
    return urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    """A database migrated once per test session, cloned for every test."""
    from migrations import migrate

    name = f"mm_tmpl_{uuid.uuid4().hex[:10]}"

    async def setup() -> None:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        await migrate(_dsn_for(name))

    try:
        asyncio.run(setup())
    except (OSError, asyncpg.PostgresError) as e:
        need_service(f"PostgreSQL not reachable at {ADMIN_DSN}: {e}")
    yield name
    asyncio.run(_drop(name))


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture
async def database_url(template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"mm_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    await conn.close()
    yield _dsn_for(name)
    await _drop(name)


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
        admin_tokens=("test-admin-token",),
    )


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
