"""Schemathesis against the served OpenAPI document: no 5xx, every response matches its schema."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

from shared.config import Settings
from tests.support import ADMIN, BIN, SAMPLE, env_for, pipeline, refresh_inline, web_process

# Operations whose schema-valid inputs include opaque tokens (cursors) or free-form CSV that no
# schema can tell apart from garbage: for them, a 400 for a "schema-valid" request is right.
OPAQUE = r"(/models$|/models/capability/|/benchmarks$|/webhooks$|/replay$)"
# Not called at all: the change stream never ends, and a test event would POST to whatever public
# address a generated subscription names. (A webhook URL that is schema-valid may still be refused
# by its address, and a replay of a disabled subscription is a 400: both are in OPAQUE.)
UNCALLED = r"(/changes/stream$|/test$)"


def _schemathesis(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("schemathesis", path=str(BIN))
    assert exe, "schemathesis is a dev dependency"
    return subprocess.run(
        [
            exe,
            "run",
            url,
            "-H",
            f"Authorization: {ADMIN['Authorization']}",
            "--generation-deterministic",
            "-n",
            "25",
            "--request-timeout",
            "10",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


#: A models document for the sample catalog: cards that its offerings link to, with benchmark
#: results (one with qualifiers), so that the canonical-model routes answer real data.
CARDS = {
    "northwind/nw-sonnet-4-5": {
        "id": "northwind/nw-sonnet-4-5",
        "name": "NW Sonnet 4.5",
        "family": "nw-sonnet",
        "benchmarks": [
            {"name": "SWE-Bench Verified", "score": 72.5, "metric": "resolved", "source": "https://example.org/a"},
            {"name": "Terminal-Bench", "score": 41.0, "harness": "terminus", "variant": "hard", "date": "2026-06-01"},
        ],
    },
    "acme/acme-large-3": {"id": "acme/acme-large-3", "name": "Acme Large 3", "family": "acme-large", "benchmarks": []},
    "meta/llama-4-scout": {
        "id": "meta/llama-4-scout",
        "name": "Llama 4 Scout",
        "open_weights": True,
        "benchmarks": [{"name": "SWE-Bench Verified", "score": 30.1}],
    },
}


async def test_served_openapi_holds(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_bytes(SAMPLE.read_bytes())
    (tmp_path / "models.json").write_text(json.dumps(CARDS))
    settings = dataclasses.replace(settings, modelsdev_url=f"file://{tmp_path / 'catalog.json'}")
    async with pipeline(settings) as ctx:
        run = await refresh_inline(ctx)
        assert run["status"] == "succeeded", run["error"]
        assert await ctx.pool.fetchval("SELECT count(*) FROM models WHERE canonical_id IS NOT NULL") > 3
    async with web_process(env_for(settings), tmp_path / "web.log") as base:
        url = base + "/api/v1/openapi.json"
        strict = await asyncio.to_thread(_schemathesis, url, "--exclude-path-regex", f"{OPAQUE}|{UNCALLED}")
        assert strict.returncode == 0, strict.stdout[-6000:]
        lenient = await asyncio.to_thread(
            _schemathesis, url, "--include-path-regex", OPAQUE, "--exclude-checks", "positive_data_acceptance"
        )
        assert lenient.returncode == 0, lenient.stdout[-6000:]
    log = (tmp_path / "web.log").read_text()
    assert "unhandled_error" not in log, log[-3000:]
    assert "test-admin-token" not in log
