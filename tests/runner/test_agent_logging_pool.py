"""A real local pool's agent logs to its own file, which `local-pool status` names, and that
file says what the agent did for a run, at debug with no credential in it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.runner.conftest import REPO, Cli, write_job

pytestmark = pytest.mark.slow
POOL = "logged"


def test_a_local_agent_logs_to_the_file_local_pool_status_names(azurite: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "JOBRUNNER_STORE": azurite, "JOBRUNNER_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("JOBRUNNER_POOL", None)
    env.pop("JOBRUNNER_LOG_LEVEL", None)
    cli = Cli(env, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "words.txt").write_text("logged words\n")
    job = write_job(
        tmp_path / "job",
        "job.yml",
        "command: cat ${{inputs.data}}/words.txt && mkdir -p outputs && echo done > outputs/done.txt\n"
        "code: .\n"
        f"inputs:\n  data: {{type: uri_folder, path: {data}}}\n",
    )
    cli.run("local-pool", "start", "--nodes", "1", "--pool", POOL, "--log-level", "debug", check=True)
    try:
        done = cli.run("submit", str(job), "--pool", POOL, "--wait", timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        run_id = done.stdout.splitlines()[0].strip()
        status = cli.json("local-pool", "status", "--pool", POOL)
        table = cli.run("local-pool", "status", "--pool", POOL, check=True).stdout
    finally:
        cli.run("local-pool", "stop", "--pool", POOL, timeout=60, check=True)

    (agent,) = status["agents"]
    log_file, output_file = Path(agent["log_file"]), Path(agent["output_file"])
    assert log_file == home / "pool" / f"{POOL}-0.log" and f"log {log_file}" in table
    assert log_file.is_file() and output_file.is_file()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600 == stat.S_IMODE(output_file.stat().st_mode)
    text = log_file.read_text()
    assert " INFO jobrunner.node.agent_logging: agent log at level debug to " in text
    assert f"{run_id} inputs.data: 1 file(s) uploaded at submit" in text
    assert f"{run_id} outputs: final sync" in text
    assert " DEBUG jobrunner." in text  # the level reached the agent
    printed = output_file.read_text()
    assert (
        f"agent {POOL}-0 serving pool {POOL}" in printed and "jobrunner.node.agent_logging" not in printed
    )  # once
    key = azurite.split("AccountKey=", 1)[1].split(";", 1)[0]
    assert key not in text and key not in printed
