"""`modelmeta import-history` against real PostgreSQL and Redis: what it refuses, where it stops."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from services.cli import build_parser, cmd_import_history
from shared.config import Settings
from shared.db.api_reads import catalog_document
from shared.embedded import document
from shared.refresh import request_refresh
from tests.integration.history_helpers import NEW, OLD, write_catalogs
from tests.support import flat_models


async def _import(settings: Settings, *args: str) -> int:
    return await cmd_import_history(settings, build_parser().parse_args(["import-history", *args]))


async def _written(settings: Settings) -> tuple[int, ...]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM refresh_runs), (SELECT count(*) FROM models), "
            "(SELECT count(*) FROM model_changes), (SELECT count(*) FROM model_versions), "
            "(SELECT count(*) FROM provider_versions), (SELECT count(*) FROM catalog_versions)"
        )
    finally:
        await conn.close()
    assert row is not None
    return tuple(row)


async def test_undated_or_out_of_order_files_are_refused_before_writing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_catalogs(tmp_path)
    undated = tmp_path / "catalog.json"
    undated.write_bytes(document(OLD))
    for args, reason in (
        ([str(undated)], f"{undated}: no date in its name"),
        ([str(paths[OLD]), str(undated), str(paths[NEW])], f"{undated}: no date in its name"),
        ([str(paths[NEW]), str(paths[OLD])], f"{paths[OLD]} (2026-03-01T00:00:00Z) is not later than {paths[NEW]}"),
        ([str(paths[OLD]), f"{paths[NEW]}@2026-03-01T00:00:00Z"], "is not later than"),
        ([str(tmp_path / "api-2026-01-01.json")], "api-2026-01-01.json: no such file"),
        ([f"{paths[OLD]}@2026-13-01T00:00:00Z"], "'2026-13-01' is not a date"),
        ([f"{paths[OLD]}@2026-03-01T10:00"], "expected an RFC 3339 time"),
    ):
        assert await _import(settings, *args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("modelmeta: nothing imported: "), err
        assert reason in err, (args, err)
    assert await _written(settings) == (0, 0, 0, 0, 0, 0)


async def test_a_file_dated_before_the_newest_change_is_refused(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_catalogs(tmp_path)
    assert await _import(settings, str(paths[NEW])) == 0
    out = capsys.readouterr().out
    assert f"2026-07-02T00:00:00Z  {paths[NEW]}: run 1 succeeded, +5276 added" in out
    before = await _written(settings)
    for args in (
        [str(paths[OLD])],
        [f"{paths[OLD]}@2026-07-02T00:00:00Z"],
        [str(paths[OLD]), f"{paths[NEW]}@2026-09-01"],
    ):
        assert await _import(settings, *args) == 1
        err = capsys.readouterr().err
        assert "nothing imported" in err
        assert "not after the newest change already recorded (2026-07-02T00:00:00Z)" in err
    assert await _written(settings) == before
    # A later one is added after it.
    assert await _import(settings, f"{paths[OLD]}@2026-09-01T12:00:00+02:00") == 0
    assert "2026-09-01T10:00:00Z" in capsys.readouterr().out


async def test_a_file_that_fails_to_decode_stops_the_import_there(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_catalogs(tmp_path)
    broken = tmp_path / "models-dev-2026-05-01-broken.json"
    broken.write_text('{"acme": {"id": "acme", "name": "Acme", "models": [1]}}')
    assert await _import(settings, str(paths[OLD]), str(broken), str(paths[NEW])) == 1
    err = capsys.readouterr().err
    assert f"modelmeta: {broken}: run 2 failed: not a models.dev document" in err
    assert "stopped there (1 earlier file(s) imported)" in err
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        runs = await pool.fetch("SELECT trigger, status, changes_at FROM refresh_runs ORDER BY id")
        assert [tuple(r) for r in runs] == [
            ("import", "succeeded", datetime(2026, 3, 1, tzinfo=UTC)),
            ("import", "failed", datetime(2026, 5, 1, tzinfo=UTC)),
        ]
        assert json.loads(await catalog_document(pool)) == json.loads(document(OLD))
        assert await pool.fetchval("SELECT count(*) FROM models") == len(flat_models(json.loads(document(OLD))))
        assert await pool.fetchval("SELECT count(DISTINCT at) FROM model_changes") == 1
    finally:
        await pool.close()


async def test_an_open_refresh_run_is_waited_for(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_catalogs(tmp_path)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        run, _ = await request_refresh(pool, trigger="cli")
    finally:
        await pool.close()
    assert await _import(settings, str(paths[OLD])) == 1
    assert f"refresh run {run['id']} is in progress" in capsys.readouterr().err
    assert (await _written(settings))[1:] == (0, 0, 0, 0, 0)
