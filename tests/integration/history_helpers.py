"""Helpers for the tests of the catalog in time: dated catalog files, databases loaded by
import-history once per module, and API clients over them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import redis
from aiohttp.test_utils import TestClient, TestServer

from services.api.main import create_app
from shared.config import Settings
from shared.embedded import document
from shared.history import dated_documents, import_history
from tests.support import ADMIN_DSN, REDIS_URL, pipeline
from tests.support import dsn_for as _dsn_for

OLD, NEW = "api-2026-03-01", "api-2026-07-02"


def write_catalogs(folder: Path) -> dict[str, Path]:
    """The two reference catalogs as files named with their dates."""
    paths = {}
    for name in (OLD, NEW):
        paths[name] = folder / f"{name}.json"
        paths[name].write_bytes(document(name))
    return paths


def settings_for(dsn: str, prefix: str) -> Settings:
    return Settings(
        database_url=dsn,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        modelsdev_url="file:///nonexistent/api.json",
        upstream_timeout=2.0,
        upstream_attempts=1,
        admin_tokens=("test-admin-token",),
    )


async def run_import(settings: Settings, specs: Sequence[str]) -> list[asyncpg.Record]:
    """import-history of these FILE[@TIME] arguments, in this process."""
    async with pipeline(settings) as ctx:
        return await import_history(ctx, dated_documents(specs))


@contextmanager
def imported_database(template_db: str, specs: Sequence[str]) -> Iterator[Settings]:
    """A database of its own (and a Redis prefix) with these documents imported; dropped afterwards."""
    name = f"mm_hist_{uuid.uuid4().hex[:12]}"
    prefix = f"mmtest-{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    settings = settings_for(_dsn_for(name), prefix)
    asyncio.run(create())
    try:
        asyncio.run(run_import(settings, specs))
        yield settings
    finally:
        asyncio.run(drop())
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with TestClient(TestServer(create_app(settings, enqueue=lambda run_id: None))) as client:
        yield client


async def get(client: TestClient, url: str, status: int = 200) -> Any:  # type: ignore[type-arg]
    resp = await client.get(url)
    assert resp.status == status, (url, resp.status, await resp.text())
    return await resp.json(content_type=None)


async def walk(client: TestClient, url: str) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    """Every row of a list, page by page."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await get(client, url + (f"&cursor={cursor}" if cursor else ""))
        out.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out
