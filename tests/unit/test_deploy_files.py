"""compose.yaml is a valid Compose file and runs the Procfile's processes with the Procfile's commands."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import ROOT, procfile


def test_compose_validates_against_the_compose_spec_offline() -> None:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe, "check-jsonschema is a dev dependency"
    out = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_runs_the_procfile_processes_with_the_same_commands() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name, command in procfile().items():
        assert name in services, f"compose.yaml has no service {name!r}"
        assert services[name]["command"] == shlex.split(command), name
    # The release step runs once and the others wait for it to succeed.
    assert services["release"]["restart"] == "no"
    for name in ("web", "worker", "scheduler"):
        assert services[name]["depends_on"]["release"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["build"] == "."
    assert services["release"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]


def test_dockerfile_installs_the_package_and_defaults_to_web() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in text
    assert 'CMD ["modelmeta", "web"]' in text
    for path in ("services", "shared", "migrations", "pyproject.toml"):
        assert path in text
