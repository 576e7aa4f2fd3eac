"""On a real local pool (2 agents, real Azurite): a job sees no store credential in its
environment, and a job file naming the runner's own containers or a path out of its attempt is
refused at submit, before anything reaches the store."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.runner.conftest import write_job

pytestmark = pytest.mark.slow

Cli = Any  # tests.runner.conftest.Cli


def test_a_job_on_a_local_pool_sees_no_store_credential(pool_env: Cli, tmp_path: Path) -> None:
    assert "AccountKey=" in pool_env.env["JOBRUNNER_STORE"]  # the agents have it
    job = write_job(
        tmp_path,
        "env.yml",
        "command: env | sort; echo done-listing\nenvironment_variables: {MINE: kept}\n",
    )
    run_id = pool_env.submit(job)
    status = pool_env.wait_state(run_id, {"succeeded", "failed", "canceled"})
    assert status["state"] == "succeeded", status
    logs = str(pool_env.run("logs", run_id, check=True).stdout)
    assert "done-listing" in logs and "MINE=kept" in logs and "NODE_RANK=0" in logs
    for leaked in ("JOBRUNNER_STORE", "JOBRUNNER_HOME", "AccountKey", "AZURITE", "devstoreaccount1"):
        assert leaked not in logs, leaked


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "inputs:\n  spec: {type: uri_file, path: azureml://datastores/runs/paths/exp/victim/spec.json}\n",
            "runner's own container",
        ),
        (
            "outputs:\n  board: {type: uri_folder, path: azureml://datastores/pools/paths/local/}\n",
            "runner's own container",
        ),
        ("outputs:\n  /etc: {type: uri_folder}\n", "not allowed"),
        ("inputs:\n  ../../.ssh: {type: uri_folder, path: ./data}\n", "not allowed"),
        (
            "inputs:\n  up: {type: uri_folder, path: azureml://datastores/workspaceblobstore/paths/../runs}\n",
            "`..`",
        ),
        ("resources: {docker_args: '--privileged -v /:/host'}\n", "not allowed on a pool"),
    ],
)
def test_a_job_naming_what_is_not_its_own_is_refused_at_submit(
    pool_env: Cli, tmp_path: Path, text: str, said: str
) -> None:
    before = {r["id"] for r in pool_env.json("list")}
    job = write_job(tmp_path, "evil.yml", "command: echo never\n" + text)
    done = pool_env.run("submit", str(job))
    assert done.returncode != 0 and said in done.stderr, done.stderr
    assert "evil.yml" in done.stderr  # the file is named, with the field
    assert {r["id"] for r in pool_env.json("list")} == before  # nothing was submitted


def test_the_local_pools_state_is_private_and_its_json_views_hide_the_key(pool_env: Cli) -> None:
    state = Path(pool_env.env["JOBRUNNER_HOME"]) / "pool" / "local.json"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert "AccountKey=" in state.read_text()  # the agents' own record keeps what they need
    key = pool_env.env["JOBRUNNER_STORE"].split("AccountKey=", 1)[1].split(";", 1)[0]
    for args in (("local-pool", "status"), ("local-pool", "start", "--nodes", "2")):
        shown = pool_env.run(*args, "--json", check=True).stdout
        assert key not in shown and "AccountKey=[redacted]" in shown, args
