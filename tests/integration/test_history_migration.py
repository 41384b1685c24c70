"""Migration 0009 on a database the previous release filled: it builds the versions from the current
rows, the change log and the loaded documents, and `at=` then answers as for imported history."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import migrations
from shared.db import catalog_writes as catalog_db
from shared.db import history as history_db
from shared.embedded import document
from tests.integration.history_helpers import NEW, OLD, api, get, settings_for
from tests.support import ADMIN_DSN, flat_models, pipeline, refresh_inline
from tests.support import dsn_for as _dsn_for

OLD_DOC, NEW_DOC = json.loads(document(OLD)), json.loads(document(NEW))


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def empty_dsn(template_db: str) -> AsyncIterator[str]:
    """A database with no schema yet (template_db: PostgreSQL is reachable, or the test skips)."""
    name = f"mm_test_{uuid.uuid4().hex[:12]}"
    yield _dsn_for(name)
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def _nothing(*args: Any) -> None:
    return None


async def test_versions_are_built_for_the_data_already_stored(
    empty_dsn: str, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "api.json"
    settings = dataclasses.replace(settings_for(empty_dsn, redis_prefix), modelsdev_url=source.as_uri())
    every = migrations.migration_files()
    # 03-01, then 07-02, then 03-01 again with the models that come back renamed: models leave, are
    # added, and come back as other objects (what they were before is in no change, only in a snapshot).
    a, b = flat_models(OLD_DOC), flat_models(NEW_DOC)
    returned = json.loads(document(OLD))
    for pid, mid in a.keys() - b.keys():
        returned[pid]["models"][mid]["name"] += " (returned)"
    bodies = [document(OLD), document(NEW), json.dumps(returned).encode()]
    runs = []
    with monkeypatch.context() as previous_release:
        # The schema and the pipeline before this change: every migration but 0009 (a deployment of
        # the release before has 0010 and 0011 already, and here 0012, which needs none of 0009; 0009
        # is applied after them) and 0014 (an index of its versions), no versions, changes at the
        # time they run.
        previous_release.setattr(migrations, "migration_files", lambda: [m for m in every if m[0] not in (9, 14)])
        await migrations.migrate(empty_dsn)
        for name in ("run_changes_at", "stamp_version", "record_model_versions", "record_provider_version"):
            previous_release.setattr(history_db, name, _nothing)
        previous_release.setattr(catalog_db, "refresh_statistics_if_stale", _nothing)  # it analyzes the versions
        async with pipeline(settings) as ctx:
            for body in bodies:
                source.write_bytes(body)
                runs.append(await refresh_inline(ctx))
    assert [r["status"] for r in runs] == ["succeeded"] * 3
    assert await migrations.migrate(empty_dsn) == ["0009_versions", "0014_versions_at"]

    conn = await asyncpg.connect(empty_dsn)
    try:
        first = await conn.fetchval("SELECT min(at) FROM model_changes")
    finally:
        await conn.close()
    ends = [r["finished_at"] for r in runs]
    async with api(settings) as client:
        assert await get(client, f"/api.json?at={iso(first - timedelta(microseconds=1))}") == {}
        assert await get(client, f"/api.json?at={iso(ends[0])}") == OLD_DOC
        assert await get(client, f"/api.json?at={iso(ends[1])}") == NEW_DOC
        assert await get(client, "/api.json") == returned
        every_one = await get(client, f"/api/v1/models?at={iso(ends[1])}&include_removed=true&limit=1")
        assert every_one["total"] == len(a.keys() | b.keys())
        assert (await get(client, f"/api/v1/models?at={iso(ends[1])}&limit=1"))["total"] == len(b)

        # A model that left and came back: priced until it left, and again since it came back.
        back = next(k for k in sorted(a.keys() - b.keys()) if "cost" in a[k])
        timeline = (await get(client, f"/api/v1/models/{back[0]}/{back[1]}/prices"))["data"]
        assert [p["cost"] for p in timeline] == [a[back]["cost"], a[back]["cost"]]
        name = await get(client, f"/api/v1/models/{back[0]}/{back[1]}?at={iso(ends[1])}")
        assert name["name"] == a[back]["name"]
        assert datetime.fromisoformat(name["removed_at"]) == datetime.fromisoformat(timeline[0]["to"])
        assert timeline[0]["to"] < iso(ends[1]) < timeline[1]["from"]
        assert timeline[1]["to"] is None

    # The history goes on from there with the new code.
    source.write_bytes(document(NEW))
    async with pipeline(settings) as ctx:
        runs.append(await refresh_inline(ctx))
    assert runs[-1]["status"] == "succeeded"
    async with api(settings) as client:
        assert await get(client, f"/api.json?at={iso(ends[2])}") == returned
        assert await get(client, f"/api.json?at={iso(ends[1])}") == NEW_DOC
        assert await get(client, "/api.json") == NEW_DOC
