"""The checkpointing example on a local pool of 4 agents survives losing a node (SIGKILL of
its agent and processes) and then a Spot eviction notice for another: it finishes succeeded,
with every attempt's logs kept, resumed from its checkpoints, and with the same final step
count and weights as an uninterrupted run of the same job beside it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import RunRef, read_status
from tests.faults.events_server import ScheduledEventsServer
from tests.faults.pool import FaultPool, wait_for
from tests.runner.conftest import REPO

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "checkpoint" / "checkpoint.yml"
STEPS = 60
STEP = re.compile(r"step-(\d+)\.pt$")


def checkpoint_steps(store: Store, ref: RunRef) -> list[int]:
    """The checkpoint steps the agents have synced to the store so far."""
    names = (b.name for b in store.list(RUNS, ref.outputs_prefix("checkpoints")))
    return sorted(int(m.group(1)) for n in names if (m := STEP.search(n)))


def test_checkpointing_job_survives_a_lost_node_and_then_a_preemption(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    with ScheduledEventsServer() as events:
        env = {"JOBRUNNER_SCHEDULED_EVENTS_URL": events.url}
        pool = FaultPool(azurite, tmp_path / "home", "survive", 4, env).start()
        runs: list[RunRef] = []
        try:
            survive(store, events, pool, runs, tmp_path)
        except BaseException:
            pool.stop()
            print(pool.dump(*runs))  # shown by pytest with the failure
            raise


def survive(
    store: Store, events: ScheduledEventsServer, pool: FaultPool, runs: list[RunRef], tmp_path: Path
) -> None:
    cli = pool.cli
    try:
        args = (
            "--pool",
            "survive",
            "--set",
            f"inputs.steps={STEPS}",
            "--set",
            "inputs.step_seconds=0.15",
        )
        reference = cli.submit(EXAMPLE, *args)
        run = cli.submit(EXAMPLE, *args)
        ref = RunRef(experiment="examples", id=run)
        runs.extend((ref, RunRef(experiment="examples", id=reference)))

        # attempt 1: once a checkpoint is in the store, its leader's node vanishes
        wait_for("a checkpoint of attempt 1", lambda: any(s >= 10 for s in checkpoint_steps(store, ref)), 120)
        first = cli.json("status", run)
        assert first["attempt"] == 1
        lost = next(n["name"] for n in first["nodes"] if n["rank"] == 0)
        pool.kill(lost)
        # an upload the node had sent in full before it died may still land: count what attempt
        # 1 left once the run is requeued (seconds later, long before attempt 2 saves anything)
        wait_for("the lost node to be noticed", lambda: read_status(store, ref)[0].attempt == 2, 60)
        saved_before_loss = max(checkpoint_steps(store, ref))

        # attempt 2 on two other agents resumes, saves further; then one of them is evicted
        def second_attempt_progressed() -> bool:
            s = cli.json("status", run)
            return s["attempt"] == 2 and max(checkpoint_steps(store, ref)) >= saved_before_loss + 10

        wait_for("attempt 2 to save new checkpoints", second_attempt_progressed, 120)
        second = cli.json("status", run)
        evicted = next(n["name"] for n in second["nodes"] if n["name"] != lost)
        event_id = events.announce("Preempt", evicted)

        final = cli.wait_state(run, {"succeeded", "failed", "canceled"}, timeout=150)
        done = cli.wait_state(reference, {"succeeded", "failed", "canceled"}, timeout=60)
        # the evicted agent took no more work: it stopped once its attempt was reported
        wait_for("the evicted agent to exit", lambda: not pool.alive(evicted), 30)
    finally:
        pool.stop()

    assert done["state"] == "succeeded", done
    assert final["state"] == "succeeded", final
    assert final["attempt"] == 3 and final["user_failures"] == 0 and final["free_requeues"] == 2
    notes = " | ".join(t["note"] or "" for t in final["transitions"])
    assert f"node(s) {lost} lost during attempt 1" in notes
    assert "preempted" in notes and event_id in notes
    assert all(n["name"] not in (lost, evicted) for n in final["nodes"])

    # the eviction was acknowledged once the attempt was reported
    assert events.acknowledged == [event_id]

    # every attempt's logs are kept; attempts 2 and 3 resumed from a checkpoint
    resumed: list[int] = []
    for attempt in (1, 2, 3):
        text = cli.run("logs", run, "--attempt", str(attempt), check=True).stdout
        assert "rank 0: step" in text and "rank 1: step" in text, (attempt, text[-2000:])
        start = int(re.search(r"rank 0: world_size=2 resuming from step (\d+)", text).group(1))  # type: ignore[union-attr]
        resumed.append(start)
    assert resumed[0] == 0 and 0 < resumed[1] <= saved_before_loss and resumed[2] > resumed[1]
    assert "node preempted" in cli.run("logs", run, "--attempt", "2", check=True).stdout

    # the same result as the uninterrupted run
    cli.run("outputs", run, "--download", str(tmp_path / "run"), check=True)
    cli.run("outputs", reference, "--download", str(tmp_path / "ref"), check=True)
    got = json.loads((tmp_path / "run" / "checkpoints" / "final.json").read_text())
    want = json.loads((tmp_path / "ref" / "checkpoints" / "final.json").read_text())
    assert want["resumed_from"] == 0 and got["resumed_from"] == resumed[2]
    assert got["steps"] == want["steps"] == STEPS
    assert got["weights"] == want["weights"]
