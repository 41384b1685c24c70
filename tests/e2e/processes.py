"""Start modelmeta processes for end-to-end tests and stop them, whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELMETA = [sys.executable, "-m", "services.cli"]
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    """process name -> command, from the Procfile."""
    out = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            out[name.strip()] = command.strip()
    return out


def procfile_argv(name: str) -> list[str]:
    """A Procfile command as argv, with `modelmeta` resolved in this environment."""
    argv = procfile()[name].split()
    assert argv[0] == "modelmeta", argv
    return [str(BIN / "modelmeta"), *argv[1:]]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process in its own session (so the whole group can be signalled), logging to a file."""
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Signal the process group and wait; SIGKILL whatever is left after the timeout."""
    if proc.poll() is None:
        try:
            # SIGTERM to the leader only (it stops its children itself); SIGKILL to the whole group.
            if sig == signal.SIGKILL:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(5)


@contextmanager
def worker(env: dict[str, str], log: Path, threads: int = 4) -> Iterator[subprocess.Popen[bytes]]:
    proc = start([*MODELMETA, "worker", "--threads", str(threads)], env, log)
    try:
        yield proc
    finally:
        stop(proc)


def cli(args: list[str], env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MODELMETA, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def wait_for(predicate: object, timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
