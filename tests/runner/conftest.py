"""A local pool of 2 real agents over the session's Azurite, and the `jobrunner` command as a
real subprocess, shared by the end-to-end tests (starting agents is the slow part)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cli:
    """Runs `python -m jobrunner ...` with the test pool's environment."""

    env: dict[str, str]
    cwd: Path

    def run(self, *args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "jobrunner", *args],
            env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"jobrunner {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def json(self, *args: str, timeout: float = 120) -> Any:
        return json.loads(self.run(*args, "--json", timeout=timeout, check=True).stdout)

    def submit(self, job: Path | str, *extra: str) -> str:
        return str(self.json("submit", str(job), *extra)["id"])

    def wait_state(self, run_id: str, states: set[str], timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.json("status", run_id)
            if status["state"] in states:
                return status  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"{run_id} still {status['state']} after {timeout} s: {status}")
            time.sleep(0.5)


@pytest.fixture(scope="session")
def pool_env(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """`jobrunner local-pool start --nodes 2` over the session's Azurite; stopped at the end."""
    home = tmp_path_factory.mktemp("jobrunner-home")
    env = {**os.environ, "JOBRUNNER_STORE": azurite, "JOBRUNNER_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("JOBRUNNER_POOL", None)
    cli = Cli(env, tmp_path_factory.mktemp("submit-from"))
    cli.run("local-pool", "start", "--nodes", "2", check=True)
    try:
        yield cli
    finally:
        cli.run("local-pool", "stop", timeout=60)


def write_job(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path
