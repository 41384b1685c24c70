"""The operator CLI against real services, as an operator would run it."""

from __future__ import annotations

import json
from pathlib import Path

from shared.config import Settings
from tests.support import cli, env_for, free_port, worker


def test_refresh_wait_status_runs_and_benchmarks(settings: Settings, tmp_path: Path) -> None:
    env = env_for(settings)
    before = cli(["status", "--json"], env)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["models"] == 0
    with worker(env, tmp_path / "worker.log"):
        done = cli(["refresh", "--wait"], env)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.strip().splitlines()
        assert any("providers 5/5" in line for line in lines), lines
        assert "succeeded: +28 added" in lines[-1]

    # A source that fails (the workers' source): the run fails and so does the command.
    bad = tmp_path / "bad.json"
    bad.write_text('{"acme": {"id": "acme", "name": "Acme", "models": [1]}}')
    with worker({**env, "MODELSDEV_URL": f"file://{bad}"}, tmp_path / "worker.log"):
        failed = cli(["refresh", "--wait", "--force"], env)
        assert failed.returncode == 1, failed.stdout
        assert "failed" in failed.stdout.splitlines()[-1]
        assert "not a models.dev document" in failed.stdout

    status = json.loads(cli(["status", "--json"], env).stdout)
    assert status["models"] == 28
    assert status["providers"] == 5
    assert status["last_run"]["status"] == "failed"
    assert status["last_success"]["counts"]["added"] == 28
    text = cli(["status"], env).stdout
    assert "5 providers, 28 models" in text

    runs = cli(["runs"], env).stdout.splitlines()
    assert runs[0].split()[:2] == ["ID", "STATUS"]
    assert len(runs) == 3
    one = cli(["run", str(status["last_success"]["id"])], env)
    assert "acme" in one.stdout and "succeeded" in one.stdout
    assert len(json.loads(cli(["run", str(status["last_success"]["id"]), "--json"], env).stdout)["providers"]) == 5

    good = tmp_path / "bench.csv"
    good.write_text("model,benchmark,score,metric,source,date\nacme/acme-large-3,mmlu,88.5,accuracy,paper,2025-06-01\n")
    imported = cli(["import-benchmarks", str(good)], env)
    assert imported.returncode == 0, imported.stderr
    assert "imported 1" in imported.stdout
    unknown = tmp_path / "bench.json"
    unknown.write_text(json.dumps([{"model": "acme/nope", "benchmark": "mmlu", "score": 1}]))
    refused = cli(["import-benchmarks", str(unknown)], env)
    assert refused.returncode == 1
    assert "no model 'acme/nope'" in refused.stderr


def test_unreachable_postgres_is_one_line_and_exit_2(settings: Settings) -> None:
    env = env_for(settings, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nope")
    for args in (["status"], ["runs"], ["refresh"], ["migrate"]):
        out = cli(args, env)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("modelmeta: cannot reach PostgreSQL"), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr


def test_unreachable_redis_for_refresh_is_exit_2(settings: Settings) -> None:
    env = env_for(settings, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    out = cli(["refresh"], env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("modelmeta: cannot reach Redis"), out.stderr
    assert "Traceback" not in out.stderr
    # The run it could not enqueue is closed, not left queued.
    runs = json.loads(cli(["runs", "--json"], env).stdout)
    assert runs[0]["status"] == "failed"
    assert "could not enqueue" in runs[0]["error"]


def test_bad_configuration_names_the_variable(settings: Settings) -> None:
    out = cli(["status"], env_for(settings, UPSTREAM_RATE_LIMIT="lots"))
    assert out.returncode == 2
    assert "UPSTREAM_RATE_LIMIT" in out.stderr
