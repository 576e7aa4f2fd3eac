"""End to end: real `jobrunner` subprocesses, 2 real agents, real Azurite.

Azure ML's own example job files run unchanged; failures, timeouts, cancels, retries, data
in and out, and gangs competing for the same agents behave as the run's status says.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import AML_CLI_V2 as CORPUS
from tests.corpus import OWN_AML_CLI_V2 as OWN
from tests.corpus import needs_corpus
from tests.runner.conftest import REPO, write_job

pytestmark = pytest.mark.slow

Cli = Any  # tests.runner.conftest.Cli


def logs_of(cli: Cli, run_id: str) -> str:
    return str(cli.run("logs", run_id, check=True).stdout)


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (OWN / "hello.yml", ["hello from a fixture"]),
        (OWN / "hello-env-var.yml", ["hello from a variable"]),
        (OWN / "hello-inputs.yml", ["hello from an input", "7"]),
        pytest.param(CORPUS / "basics__hello-world.yml", ["hello world"], marks=needs_corpus),
        pytest.param(CORPUS / "basics__hello-world-env-var.yml", ["hello world"], marks=needs_corpus),
        pytest.param(CORPUS / "basics__hello-world-input.yml", ["hello world", "42"], marks=needs_corpus),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_azure_ml_hello_examples_succeed_with_their_text_in_the_logs(
    pool_env: Cli, job: Path, expected: list[str]
) -> None:
    done = pool_env.run("submit", str(job), "--wait", timeout=120)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.splitlines()[0].strip()
    text = logs_of(pool_env, run_id)
    for word in expected:
        assert word in text


@pytest.mark.parametrize(
    "job,text",
    [
        (OWN / "hello-output.yml", "greeting/greeting.txt:hello to an output"),
        pytest.param(
            CORPUS / "basics__hello-world-output-data.yml",
            "hello_output/helloworld.txt:hello world",
            marks=needs_corpus,
        ),
    ],
    ids=["own", "corpus"],
)
def test_outputs_written_by_the_job_can_be_downloaded(
    pool_env: Cli, tmp_path: Path, job: Path, text: str
) -> None:
    written = pool_env.submit(job)
    hello = pool_env.submit(REPO / "examples" / "hello" / "job.yml")
    assert pool_env.wait_state(written, {"succeeded", "failed", "canceled"})["state"] == "succeeded"
    assert pool_env.wait_state(hello, {"succeeded", "failed", "canceled"})["state"] == "succeeded"
    pool_env.run("outputs", written, "--download", str(tmp_path / "a"), check=True)
    file, words = text.split(":")
    assert (tmp_path / "a" / file).read_text().strip() == words
    pool_env.run("outputs", hello, "--download", str(tmp_path / "b"), check=True)
    assert "hello from trainstack" in (tmp_path / "b" / "outputs" / "x.txt").read_text()


def test_failing_command_keeps_exit_code_and_logs(pool_env: Cli, tmp_path: Path) -> None:
    job = write_job(tmp_path, "fail.yml", 'command: echo "before the end"; echo "it broke" >&2; exit 3\n')
    done = pool_env.run("submit", str(job), "--wait", timeout=120)
    assert done.returncode == 1
    run_id = done.stdout.splitlines()[0].strip()
    status = pool_env.json("status", run_id)
    assert status["state"] == "failed" and status["exit_code"] == 3 and status["failure_kind"] == "user"
    assert "it broke" in status["reason"]
    text = logs_of(pool_env, run_id)
    assert "before the end" in text and "it broke" in text


def test_timeout_stops_the_job(pool_env: Cli, tmp_path: Path) -> None:
    # a job left to run would end far past the wait below: ending inside it means it was stopped
    job = write_job(tmp_path, "slow.yml", "command: echo started; sleep 3600\nlimits:\n  timeout: 2\n")
    run_id = pool_env.submit(job)
    status = pool_env.wait_state(run_id, {"succeeded", "failed", "canceled"}, timeout=120)
    assert status["state"] == "failed" and status["failure_kind"] == "timeout"
    assert "started" in logs_of(pool_env, run_id)


def test_cancel_stops_a_running_job_and_a_queued_one(pool_env: Cli, tmp_path: Path) -> None:
    job = write_job(tmp_path, "long.yml", "command: echo working; sleep 120\n")
    run_id = pool_env.submit(job)
    pool_env.wait_state(run_id, {"running"})
    pool_env.run("cancel", run_id, check=True)
    status = pool_env.wait_state(run_id, {"succeeded", "failed", "canceled"}, timeout=60)
    assert status["state"] == "canceled"
    assert [t["state"] for t in status["transitions"]][-1] == "canceled"
    # a pool without agents keeps the run queued: canceling it ends it at once
    queued = pool_env.submit(job, "--pool", "nobody-serves-this")
    pool_env.run("cancel", queued, check=True)
    assert pool_env.json("status", queued)["state"] == "canceled"


def test_retry_runs_a_second_attempt_after_a_user_failure(pool_env: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "tried-once"
    job = write_job(
        tmp_path,
        "flaky.yml",
        f"command: if [ -e {marker} ]; then echo second; else touch {marker}; echo first; exit 1; fi\n"
        "trainstack:\n  retry:\n    max_attempts: 2\n",
    )
    run_id = pool_env.submit(job)
    status = pool_env.wait_state(run_id, {"succeeded", "failed", "canceled"})
    assert status["state"] == "succeeded" and status["attempt"] == 2 and status["user_failures"] == 1
    assert "second" in logs_of(pool_env, run_id)


def test_inputs_from_a_datastore_and_a_local_folder_and_outputs_to_a_datastore(
    pool_env: Cli, tmp_path: Path
) -> None:
    data = tmp_path / "iris"
    data.mkdir()
    (data / "iris.csv").write_text("5.1,3.5,1.4,0.2,setosa\n")
    pool_env.run("data", "upload", str(data), "--path", "example-data", check=True)
    local = tmp_path / "local-in"
    local.mkdir()
    (local / "words.txt").write_text("from the submitting machine\n")
    job = write_job(
        tmp_path,
        "io.yml",
        "command: >-\n  cat ${{inputs.data_dir}}/iris.csv ${{inputs.local_dir}}/words.txt\n"
        "  && cp ${{inputs.data_dir}}/iris.csv ${{outputs.model}}/copied.csv\n"
        "inputs:\n  data_dir:\n    type: uri_folder\n"
        "    path: azureml://datastores/workspaceblobstore/paths/example-data/\n"
        "  local_dir:\n    type: uri_folder\n    path: ./local-in\n"
        "outputs:\n  model:\n    type: uri_folder\n"
        "    path: azureml://datastores/workspaceblobstore/paths/results/model\n",
    )
    done = pool_env.run("submit", str(job), "--wait", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.splitlines()[0].strip()
    text = logs_of(pool_env, run_id)
    assert "setosa" in text and "from the submitting machine" in text
    pool_env.run("outputs", run_id, "--download", str(tmp_path / "out"), check=True)
    assert "setosa" in (tmp_path / "out" / "model" / "copied.csv").read_text()
    pool_env.run("data", "download", str(tmp_path / "ds"), "--path", "results/model", check=True)
    assert "setosa" in (tmp_path / "ds" / "copied.csv").read_text()


def test_two_two_node_jobs_at_once_on_two_agents_both_finish(pool_env: Cli, tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        "pair.yml",
        'command: echo "rank $NODE_RANK of $WORLD_SIZE via $MASTER_ADDR:$MASTER_PORT"; sleep 1\n'
        "resources:\n  instance_count: 2\n",
    )
    first, second = pool_env.submit(job), pool_env.submit(job)
    for run_id in (first, second):
        status = pool_env.wait_state(run_id, {"succeeded", "failed", "canceled"}, timeout=90)
        assert status["state"] == "succeeded", status
        assert sorted(n["name"] for n in status["nodes"]) == ["local-0", "local-1"]
        text = logs_of(pool_env, run_id)
        assert "rank 0 of 2" in text and "rank 1 of 2" in text


def test_status_json_shape(pool_env: Cli) -> None:
    done = pool_env.run("submit", str(OWN / "hello.yml"), "--wait", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert {"id", "state", "attempt", "nodes", "exit_code", "reason"} <= set(status)
    assert status["state"] == "succeeded" and status["exit_code"] == 0 and status["attempt"] == 1
    assert [{k: n[k] for k in ("name", "rank")} for n in status["nodes"]] in (
        [{"name": "local-0", "rank": 0}],
        [{"name": "local-1", "rank": 0}],
    )
    states = [t["state"] for t in status["transitions"]]
    assert states[0] == "queued" and states[-1] == "succeeded" and "running" in states
    listed = pool_env.json("list")
    assert status["id"] in [r["id"] for r in listed]


def test_a_job_larger_than_the_pool_is_refused_at_submit(pool_env: Cli, tmp_path: Path) -> None:
    job = write_job(tmp_path, "big.yml", "command: echo hi\nresources:\n  instance_count: 3\n")
    done = pool_env.run("submit", str(job))
    assert done.returncode == 1
    assert "resources.instance_count" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_local_pool_and_pool_status(pool_env: Cli) -> None:
    local = pool_env.json("local-pool", "status")
    assert sorted(a["name"] for a in local["agents"]) == ["local-0", "local-1"]
    assert all(isinstance(a["pid"], int) for a in local["agents"]) and local["store"]
    pool = pool_env.json("pool", "status")
    assert pool["max_nodes"] == 2 and {n["name"] for n in pool["nodes"]} == {"local-0", "local-1"}
    assert all(n["heartbeat_age_s"] < 30 and n["incarnation"] for n in pool["nodes"])
    assert pool["leader"] in ("local-0", "local-1") and pool["waiting"] == []


def test_unknown_run_is_one_line_with_the_fix(pool_env: Cli) -> None:
    done = pool_env.run("status", "run-nope")
    assert done.returncode == 1 and "jobrunner list" in done.stderr and "Traceback" not in done.stderr


def test_pytorch_ddp_example_runs_on_two_nodes(pool_env: Cli, tmp_path: Path) -> None:
    done = pool_env.run("submit", str(REPO / "examples" / "ddp" / "job.yml"), "--wait", timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    run_id = done.stdout.splitlines()[0].strip()
    assert "world_size=2" in logs_of(pool_env, run_id)
    status = pool_env.json("status", run_id)
    assert sorted((n["rank"], n["exit_code"]) for n in status["nodes"]) == [(0, 0), (1, 0)]
    pool_env.run("outputs", run_id, "--download", str(tmp_path), check=True)
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["world_size"] == 2


def test_stopping_the_pool_stops_its_jobs_and_requeues_them(azurite: str, tmp_path: Path) -> None:
    """A job must not outlive its agent; the run goes back to the queue without spending its budget."""
    import os

    from tests.runner.conftest import Cli as PoolCli

    env = {
        **os.environ,
        "JOBRUNNER_STORE": azurite,
        "JOBRUNNER_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(REPO),
    }
    cli = PoolCli(env, tmp_path)
    cli.run("local-pool", "start", "--nodes", "1", "--pool", "short", check=True)
    marker = tmp_path / "child.pid"
    job = write_job(tmp_path, "sleepy.yml", f"command: echo $$ > {marker}; exec sleep 300\n")
    run_id = cli.submit(job, "--pool", "short")
    try:
        cli.wait_state(run_id, {"running"})
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        cli.run("local-pool", "stop", "--pool", "short", timeout=60, check=True)
    child = int(marker.read_text())
    proc = Path(f"/proc/{child}/stat")
    assert not proc.exists() or proc.read_text().split()[2] == "Z"  # gone (or a zombie awaiting its reaper)
    status = cli.json("status", run_id)
    assert status["state"] == "queued" and status["attempt"] == 2 and status["user_failures"] == 0
    assert "stopped" in status["reason"]
