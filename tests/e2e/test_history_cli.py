"""`modelmeta import-history` as an operator runs it, then `at=` from the web process it feeds."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from shared.config import Settings
from shared.embedded import document
from tests.support import MODELMETA, cli, env_for, free_port, start, stop, wait_ready

pytestmark = pytest.mark.slow


async def test_import_history_then_the_catalog_at_each_date(settings: Settings, tmp_path: Path) -> None:
    env = env_for(settings)
    files = []
    for name in ("api-2026-03-01", "api-2026-07-02"):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_bytes(document(name))

    refused = cli(["import-history", str(files[1]), str(files[0])], env)
    assert refused.returncode == 1
    assert "nothing imported" in refused.stderr and "is not later than" in refused.stderr

    done = cli(["import-history", *map(str, files)], env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"2026-03-01T00:00:00Z  {files[0]}: run 1 succeeded, +3053 added")
    assert lines[1].startswith(f"2026-07-02T00:00:00Z  {files[1]}: run 2 succeeded, +2982 added, ~1540 updated")
    assert lines[-1] == "imported 2 document(s)"

    port = free_port()
    web = start([*MODELMETA, "web"], {**env, "PORT": str(port)}, tmp_path / "web.log")
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_ready(base)
        for at, name in (("2026-05-01", "api-2026-03-01"), ("2026-07-02", "api-2026-07-02")):
            with urllib.request.urlopen(f"{base}/api.json?at={at}") as r:
                assert json.loads(r.read()) == json.loads(document(name)), at
    finally:
        stop(web)
