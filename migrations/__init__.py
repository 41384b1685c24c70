"""Numbered SQL migrations and their runner (`modelmeta migrate`, the Procfile's `release`)."""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

log = structlog.get_logger(__name__)

#: pg_advisory_lock key held while migrating, so two deploys never race.
MIGRATION_LOCK_KEY = 0x6D6D_6D69  # "mmmi"


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every NNNN_name.sql file, in order."""
    found = []
    for entry in resources.files(__package__).iterdir():
        m = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", entry.name)
        if m:
            found.append((int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {sorted(versions)}")
    return sorted(found)


class SchemaBehind(RuntimeError):
    """The database has not had every migration applied (the release step has not run)."""


async def wait_for_schema(dsn: str, *, within: float = 60.0) -> None:
    """Wait until every migration is applied, so processes started beside the release step start
    after it; give up with SchemaBehind after `within` seconds."""
    latest = migration_files()[-1][0]
    deadline = asyncio.get_running_loop().time() + within
    current: int | None = None
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                current = await conn.fetchval("SELECT max(version) FROM schema_migrations")
            finally:
                await conn.close()
        except (asyncpg.UndefinedTableError, asyncpg.InvalidCatalogNameError):
            current = None
        if current is not None and current >= latest:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise SchemaBehind(
                f"the database schema is at migration {current or 0}, this release needs {latest}: "
                "run `modelmeta migrate` (the Procfile's release step)"
            )
        log.info("waiting_for_migrations", current=current, needed=latest)
        await asyncio.sleep(1.0)


async def ensure_database(dsn: str) -> bool:
    """Create the database named in dsn if it does not exist; True when it was created."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    parts = urlsplit(dsn)
    dbname = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{dbname.replace(chr(34), "")}"')
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await admin.close()
    log.info("database_created", database=dbname)
    return True


async def migrate(dsn: str) -> list[str]:
    """Apply every migration not yet recorded, each once, in order; return the names applied."""
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied_now.append(f"{version:04d}_{name}")
            log.info("migration_applied", version=version, name=name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        await conn.close()
    return applied_now
