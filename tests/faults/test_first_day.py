"""What a new user hits on the first bad day, on a real agent process over Azurite and through
the real `jobrunner` command: job output and names with square brackets print as text, a job
that breaks staging or launching ends its run with the reason (the agent lives on and serves the
next job), a 10 MB stderr line leaves a small status.json, and what submit can check it refuses
with the field or the path."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobrunner.client import Client
from jobrunner.spec.job import load_job
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import MAX_REASON_CHARS
from tests.faults.pool import FaultPool
from tests.runner.conftest import Cli, write_job

pytestmark = pytest.mark.slow
AGENT = "firstday-0"
DONE = {"succeeded", "failed", "canceled"}


@pytest.fixture(scope="module")
def pool(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultPool]:
    """One agent for the whole module: every test ends by checking that it still serves jobs."""
    pool = FaultPool(azurite, tmp_path_factory.mktemp("firstday"), "firstday", 1).start()
    try:
        yield pool
    finally:
        pool.stop()


def terminal(pool: FaultPool) -> Cli:
    """The command as on a terminal: rich renders markup there, which is where brackets broke it."""
    return Cli({**pool.env, "TTY_COMPATIBLE": "1", "COLUMNS": "200"}, pool.home)


def run_job(pool: FaultPool, tmp_path: Path, text: str, timeout: float = 120) -> dict[str, Any]:
    """Submit a job file of `text` to the pool and wait until its run is over; its status."""
    job = write_job(tmp_path, "job.yml", text + "experiment_name: firstday\n")
    return pool.cli.wait_state(pool.cli.submit(job, "--pool", pool.name), DONE, timeout=timeout)


def still_serves(pool: FaultPool, tmp_path: Path) -> None:
    status = run_job(pool, tmp_path / "next", 'command: echo "next job served"\n')
    assert status["state"] == "succeeded", pool.dump()
    assert status["nodes"][0]["name"] == AGENT and pool.alive(AGENT), pool.log(AGENT)


def status_blob(pool: FaultPool, status: dict[str, Any]) -> bytes:
    return Store.connect(pool.store).get(RUNS, f"{status['experiment']}/{status['id']}/status.json")[0]


def test_brackets_in_output_reasons_and_names_print_as_they_are(pool: FaultPool, tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        "brackets.yml",
        "command: |\n"
        '  echo "copied to [/tmp/x] in [bold]bold[/bold]"\n'
        '  echo "[red]broken[/" >&2\n'
        "  exit 3\n"
        "display_name: '[bold]my run'\n"
        "experiment_name: brackets\n",
    )
    cli = terminal(pool)
    done = cli.run("submit", str(job), "--pool", pool.name, "--wait", timeout=180)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done
    assert "copied to [/tmp/x] in [bold]bold[/bold]" in done.stdout
    assert "[red]broken[/" in done.stdout + done.stderr
    run_id = done.stdout.splitlines()[0].strip()

    follow = cli.run("logs", run_id, "--follow", timeout=60)
    assert follow.returncode == 0 and "copied to [/tmp/x] in [bold]bold[/bold]" in follow.stdout, follow
    shown = cli.run("status", run_id, timeout=60)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown
    assert "[red]broken[/" in shown.stdout  # the reason carries the last stderr line
    listed = cli.run("list", timeout=60)
    assert listed.returncode == 0 and run_id in listed.stdout, listed
    still_serves(pool, tmp_path)


def test_a_datastore_holding_a_and_a_slash_b_fails_the_run_not_the_agent(
    pool: FaultPool, tmp_path: Path
) -> None:
    store = Store.connect(pool.store)
    store.put("workspaceblobstore", "clash/a", b"a file")
    store.put("workspaceblobstore", "clash/a/b", b"a file under a")
    status = run_job(
        pool,
        tmp_path,
        "command: ls ${{inputs.data}}\n"
        "inputs:\n  data: {type: uri_folder, path: 'azureml://datastores/workspaceblobstore/paths/clash'}\n",
    )
    assert status["state"] == "failed" and status["failure_kind"] == "user", pool.dump()
    assert (
        f"staging on {AGENT} failed: workspaceblobstore/clash/a is a blob and also a folder"
        in status["reason"]
    )
    still_serves(pool, tmp_path)


def test_an_error_the_agent_did_not_foresee_ends_the_attempt_and_the_agent_lives(
    pool: FaultPool, tmp_path: Path
) -> None:
    """A NUL byte in the command, slipped past submit (an older client, a spec.json written by
    hand): starting the process raises inside the agent, and the run still concludes."""
    job = write_job(tmp_path, "nul.yml", "command: echo hi\nexperiment_name: firstday\n")
    spec = load_job(job)
    spec = spec.model_copy(update={"command": "echo \0 hi"})
    client = Client(Store.connect(pool.store), pool=pool.name)
    run_id = client.submit_spec(spec).id
    status = pool.cli.wait_state(run_id, DONE, timeout=300)
    assert status["state"] == "failed" and status["failure_kind"] == "infrastructure", pool.dump()
    assert f"running the job on {AGENT} failed: ValueError: embedded null byte" in status["reason"]
    assert "Traceback" not in pool.log(AGENT)
    still_serves(pool, tmp_path)


def test_a_ten_megabyte_stderr_line_leaves_a_small_status(pool: FaultPool, tmp_path: Path) -> None:
    command = "python -c \"import sys; sys.stderr.write('E' * 10_000_000 + '\\n'); sys.exit(3)\""
    status = run_job(pool, tmp_path, f"command: {command}\n", timeout=300)
    run_id = status["id"]
    assert status["state"] == "failed" and status["exit_code"] == 3, pool.dump()
    assert len(status_blob(pool, status)) < 50_000
    reasons = [
        status["reason"],
        *(n["reason"] for n in status["nodes"]),
        *(t["note"] for t in status["transitions"]),
    ]
    assert all(r is None or len(r) <= MAX_REASON_CHARS for r in reasons)
    assert "the whole text is in the run's logs" in status["reason"]
    logs = pool.cli.run("logs", run_id, timeout=120).stdout
    assert logs.count("E") >= 10_000_000  # the whole line, in the logs
    still_serves(pool, tmp_path)


@pytest.mark.parametrize("target", ["/mnt/datasets", "../outside"])
def test_a_link_out_of_the_code_folder_is_refused_at_submit_with_its_path(
    pool: FaultPool, tmp_path: Path, target: str
) -> None:
    code = tmp_path / "src"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    os.symlink(target, code / "data")
    job = write_job(
        tmp_path, "linked.yml", "command: python train.py\ncode: src\nexperiment_name: firstday\n"
    )
    done = pool.cli.run("submit", str(job), "--pool", pool.name)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done
    (line,) = done.stderr.strip().splitlines()
    assert f"{code / 'data'} is a link to {target}, outside the code folder" in line


def test_submit_refuses_what_a_node_could_not_run_with_the_field(pool: FaultPool, tmp_path: Path) -> None:
    for text, field in (
        ("environment_variables:\n  'A=B': x\n", "environment_variables: `A=B`"),
        ('environment_variables:\n  OK: "a\\0b"\n', "environment_variables.OK: holds a NUL byte"),
        ("resources:\n  instance_count: 100000000\n", "resources.instance_count: asks for 100000000"),
    ):
        job = write_job(tmp_path, "refused.yml", "command: echo hi\n" + text)
        done = pool.cli.run("submit", str(job), "--pool", pool.name, "--json")
        assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr, done
        assert field in done.stderr and str(job) in done.stderr
    listed = json.loads(pool.cli.run("list", "--json", check=True).stdout)
    assert all(r.get("display_name") != "refused" for r in listed)


@pytest.mark.parametrize(
    ("path", "kind", "cause"),
    [
        ("gone/data.csv", "user", "HTTP Error 404"),
        ("short/data.csv", "infrastructure", "ended after 10 of 100"),
    ],
)
def test_an_http_input_that_fails_names_the_url_without_its_query(
    pool: FaultPool, tmp_path: Path, misbehaving_http: str, path: str, kind: str, cause: str
) -> None:
    url = f"{misbehaving_http}/{path}"
    status = run_job(
        pool,
        tmp_path,
        f"command: cat ${{{{inputs.d}}}}\ninputs:\n  d: {{type: uri_file, path: '{url}?sv=1&sig=SECRET'}}\n",
        timeout=300,
    )
    assert status["state"] == "failed" and status["failure_kind"] == kind, pool.dump()
    assert f"staging on {AGENT} failed: inputs.d: " in status["reason"] and url in status["reason"]
    assert cause in status["reason"] and "SECRET" not in status_blob(pool, status).decode()
    still_serves(pool, tmp_path)
