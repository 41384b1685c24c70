"""Idempotency-Key of a refresh request is bounded: it matches for 24 hours, and only so many are held."""

from __future__ import annotations

import asyncpg

from shared.db import runs
from shared.enums import RunStatus, Trigger


async def keyed_run(conn: asyncpg.Connection, key: str) -> tuple[int, bool]:
    run, created = await runs.create_or_join_run(
        conn, trigger=Trigger.API, providers=["acme"], force=False, idempotency_key=key
    )
    await runs.finish_run(conn, run["id"], RunStatus.UNCHANGED)  # closed: only the key can join it
    return int(run["id"]), created


async def test_a_key_matches_its_run_for_a_day_then_makes_a_new_one(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first, created = await keyed_run(conn, "k1")
        assert created
        assert await keyed_run(conn, "k1") == (first, False)
        await conn.execute("UPDATE refresh_runs SET requested_at = now() - interval '25 hours' WHERE id = $1", first)
        second, created = await keyed_run(conn, "k1")
        assert created and second != first, "a key older than 24 h no longer matches"
        assert await conn.fetchval("SELECT idempotency_key FROM refresh_runs WHERE id = $1", first) is None
        assert await keyed_run(conn, "k1") == (second, False)
    finally:
        await conn.close()


async def test_only_the_newest_keys_are_held(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        ids = [(await keyed_run(conn, f"key-{i}"))[0] for i in range(5)]
        assert await runs.forget_idempotency_keys(conn, keep=3) == 2
        held = await conn.fetch("SELECT id FROM refresh_runs WHERE idempotency_key IS NOT NULL ORDER BY id")
        assert [r["id"] for r in held] == ids[2:]
        assert await runs.forget_idempotency_keys(conn, keep=3) == 0
        again, created = await keyed_run(conn, "key-0")
        assert created and again not in ids, "a forgotten key makes a new run"
    finally:
        await conn.close()
