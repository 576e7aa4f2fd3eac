"""Cancel works in every state a run can be in on a real pool of 2 agents: queued (no agent
free), waiting for its gang (a 2-node job with 1 agent free), preparing (a slow
`trainstack.preparation`) and running. Each ends `canceled`, no process of it is left (every
command carries a marker in its argv, looked for in /proc), and the agents are idle again and
run the next job, a 2-node one that needs both."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from jobrunner.store.client import Store
from jobrunner.store.status import RunRef
from tests.faults.pool import FaultPool, wait_for
from tests.runner.conftest import Cli, write_job

pytestmark = pytest.mark.slow

POOL = "cancels"
TERMINAL = {"succeeded", "failed", "canceled"}


def processes_with(marker: str) -> list[int]:
    """Pids of live processes with `marker` in their argv."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if marker.encode() in cmdline.read_bytes():
                out.append(int(cmdline.parent.name))
    return out


def sleeper(marker: str) -> str:
    """A shell command whose long-lived child has `marker` in its argv (so an orphan shows)."""
    return f"python3 -c 'import time; time.sleep(600)' {marker}; echo finished"


def cancel_and_check(cli: Cli, run_id: str, marker: str | None) -> dict[str, Any]:
    cli.run("cancel", run_id, check=True)
    status = cli.wait_state(run_id, TERMINAL, timeout=60)
    assert status["state"] == "canceled", status
    assert status["failure_kind"] in (None, "canceled") and status["reason"] == "canceled on request"
    if marker is not None:
        wait_for(f"the processes of {run_id} to go", lambda: not processes_with(marker), timeout=20)
    return status


def agents_idle(cli: Cli) -> bool:
    view = cli.json("pool", "status", "--pool", POOL)
    return all(n["state"] == "idle" for n in view["nodes"]) and len(view["nodes"]) == 2


def test_cancel_in_every_state_leaves_no_process_and_idle_agents(azurite: str, tmp_path: Path) -> None:
    pool = FaultPool(azurite, tmp_path / "home", POOL, 2).start()
    runs: list[RunRef] = []
    try:
        cancel_everywhere(pool, Store.connect(azurite), runs, tmp_path)
    except BaseException:
        pool.stop()
        print(pool.dump(*runs))  # shown by pytest with the failure
        raise
    pool.stop()


def cancel_everywhere(pool: FaultPool, store: Store, runs: list[RunRef], tmp_path: Path) -> None:
    cli = pool.cli
    tag = uuid.uuid4().hex[:8]
    markers = {k: f"cancel-marker-{tag}-{k}" for k in ("prep", "run", "queued", "gang", "next")}

    def submit(name: str, text: str) -> str:
        run_id = cli.submit(
            write_job(tmp_path, f"{name}.yml", f"experiment_name: cancels\n{text}"), "--pool", POOL
        )
        runs.append(RunRef(experiment="cancels", id=run_id))
        return run_id

    # preparing: one agent runs a slow preparation command
    prep = submit(
        "prep", f"command: echo never\ntrainstack:\n  preparation:\n    command: {sleeper(markers['prep'])}\n"
    )
    wait_for("the preparation command", lambda: processes_with(markers["prep"]))
    assert cli.json("status", prep)["state"] == "preparing"
    # running: the other agent runs a long command
    running = submit("run", f"command: {sleeper(markers['run'])}\n")
    wait_for("the long command", lambda: processes_with(markers["run"]))
    assert cli.json("status", running)["state"] == "running"

    # queued: no agent is free
    queued = submit("queued", f"command: {sleeper(markers['queued'])}\n")
    assert cli.json("status", queued)["state"] == "queued"
    cancel_and_check(cli, queued, markers["queued"])

    cancel_and_check(cli, prep, markers["prep"])
    assert "never" not in cli.run("logs", prep, check=True).stdout

    # waiting for a gang: a 2-node job while one agent is busy; the scheduler says it waits
    gang = submit("gang", f"command: {sleeper(markers['gang'])}\nresources:\n  instance_count: 2\n")

    def waiting_for(run_id: str) -> bool:
        return any(run_id in line for line in cli.json("pool", "status", "--pool", POOL)["waiting"])

    wait_for("the gang waiting for nodes", lambda: waiting_for(gang))
    assert cli.json("status", gang)["state"] == "queued"
    cancel_and_check(cli, gang, markers["gang"])

    cancel_and_check(cli, running, markers["run"])
    wait_for("both agents idle", lambda: agents_idle(cli), timeout=30)

    # the agents take the next job, one that needs both of them
    after = submit("next", f"command: echo next {markers['next']}\nresources:\n  instance_count: 2\n")
    status = cli.wait_state(after, TERMINAL, timeout=90)
    assert status["state"] == "succeeded", status
    assert {n["name"] for n in status["nodes"]} == {f"{POOL}-0", f"{POOL}-1"}
    for run_id in (queued, gang):
        states = [t["state"] for t in cli.json("status", run_id)["transitions"]]
        assert states == ["queued", "canceled"], states  # never started anywhere
    assert not any(processes_with(m) for m in markers.values())
