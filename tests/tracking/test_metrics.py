"""Plain MLflow logging from a 2-node job lands in one MLflow run per job run, and
`jobrunner metrics`, `status`, `list --metric` and `submit --wait` show it: real agents, real
Azurite, a real MLflow tracking server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from jobrunner.store.client import Store
from jobrunner.tracking.runs import RUN_ID_TAG, open_tracking_run, read_record
from tests.runner.conftest import Cli
from tests.tracking.conftest import EXAMPLE, STEPS

pytestmark = pytest.mark.slow

RANK_METRICS = ("rank_0/samples_per_s", "rank_1/samples_per_s")


def metrics_json(cli: Cli, run_id: str) -> dict[str, Any]:
    return json.loads(cli.run("metrics", run_id, "--json", check=True).stdout)  # type: ignore[no-any-return]


def test_every_step_of_every_rank_is_in_metrics_json(tracked_pool: Cli, example_run: str) -> None:
    data = metrics_json(tracked_pool, example_run)
    assert set(data) == {"run", "params", "metrics"}
    assert data["run"] == example_run
    assert data["params"] == {"steps": "50", "learning_rate": "0.1", "world_size": "2"}
    assert set(data["metrics"]) == {"loss", *RANK_METRICS}
    for name, points in data["metrics"].items():
        assert [p["step"] for p in points] == list(range(STEPS)), name
        assert all(set(p) == {"step", "value", "timestamp"} for p in points)
    losses = [p["value"] for p in data["metrics"]["loss"]]
    assert losses[0] > losses[-1] > 0


def test_mlflow_own_client_reads_the_same_values(
    tracked_pool: Cli, example_run: str, tracking_server: str
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_server)
    runs = client.search_runs(
        [client.get_experiment_by_name("examples").experiment_id],
        filter_string=f"tags.`{RUN_ID_TAG}` = '{example_run}'",
    )
    assert len(runs) == 1, "one MLflow run per job run, shared by both nodes"
    mlflow_run = runs[0]
    # the scheduler ends the MLflow run just after the pass that settled the job run
    deadline = time.monotonic() + 30
    while mlflow_run.info.status != "FINISHED" and time.monotonic() < deadline:
        time.sleep(0.2)
        mlflow_run = client.get_run(mlflow_run.info.run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["steps"] == "50"
    ours = metrics_json(tracked_pool, example_run)["metrics"]
    for name in ("loss", *RANK_METRICS):
        theirs = sorted(client.get_metric_history(mlflow_run.info.run_id, name), key=lambda m: m.step)
        assert [(m.step, m.value, m.timestamp) for m in theirs] == [
            (p["step"], p["value"], p["timestamp"]) for p in ours[name]
        ]


def test_status_and_list_show_the_last_value(tracked_pool: Cli, example_run: str) -> None:
    last = metrics_json(tracked_pool, example_run)["metrics"]["loss"][-1]["value"]
    status = tracked_pool.run("status", example_run, check=True).stdout
    assert f"loss={last:.6g}" in status
    listed = tracked_pool.run("list", "--metric", "loss", check=True).stdout
    row = next(line for line in listed.splitlines() if example_run in line)
    assert row.split()[-1] == f"{last:.6g}"
    as_json = tracked_pool.json("list", "--metric", "loss")
    assert next(r for r in as_json if r["id"] == example_run)["metrics"] == {"loss": f"{last:.6g}"}


def test_plots_and_table_in_the_terminal_view(tracked_pool: Cli, example_run: str) -> None:
    text = tracked_pool.run("metrics", example_run, check=True).stdout
    assert "params: learning_rate=0.1, steps=50, world_size=2" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("loss "))
    assert row.split()[1:3] == ["50", "49"]  # points, last step
    assert text.count("step") >= 3 and "┌" in text  # a plot per metric, axis named


def test_follow_shows_steps_while_the_run_goes_and_wait_shows_last_values(tracked_pool: Cli) -> None:
    argv = [
        sys.executable,
        "-m",
        "jobrunner",
        "submit",
        str(EXAMPLE),
        "--set",
        "inputs.step_seconds=0.3",
        "--wait",
    ]
    with subprocess.Popen(
        argv,
        env=tracked_pool.env,
        cwd=tracked_pool.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as submit:
        assert submit.stdout is not None and submit.stderr is not None
        run_id = submit.stdout.readline().strip()
        follow = tracked_pool.run("metrics", run_id, "--follow", "--json", timeout=240, check=True)
        waited = submit.stderr.read()
        submit.stdout.read()
    assert submit.returncode == 0, waited
    snapshots = [json.loads(line) for line in follow.stdout.splitlines()]
    counts = [len(s["metrics"].get("loss", [])) for s in snapshots]
    assert counts[-1] == STEPS
    assert any(0 < c < STEPS for c in counts), f"no snapshot while the run went: {counts}"
    assert counts == sorted(counts)
    final = snapshots[-1]["metrics"]["loss"][-1]["value"]
    assert f"metrics: loss={final:.6g}" in waited


def test_nodes_racing_to_open_the_run_share_one_mlflow_run(azurite: str, tracking_server: str) -> None:
    from mlflow.tracking import MlflowClient

    from jobrunner.spec.job import parse_job
    from jobrunner.store.status import RunRef

    store = Store.connect(azurite)
    ref = RunRef(experiment="race", id="run-race-0001")
    spec = parse_job("command: echo\nexperiment_name: race\n", source="race.yml")
    opened: list[str] = []
    barrier = threading.Barrier(4)

    def node() -> None:
        barrier.wait()
        opened.append(open_tracking_run(store, ref, spec, tracking_server, pool="p").run_id)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorded = read_record(store, ref)
    assert recorded is not None and set(opened) == {recorded.run_id}
    client = MlflowClient(tracking_uri=tracking_server)
    live = client.search_runs(
        [client.get_experiment_by_name("race").experiment_id],
        filter_string=f"tags.`{RUN_ID_TAG}` = '{ref.id}'",
    )
    assert [r.info.run_id for r in live] == [recorded.run_id], "the losers' runs are deleted"


def test_a_waiting_rank_takes_rank_0s_run_and_makes_none_itself(azurite: str, tracking_server: str) -> None:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    from jobrunner.spec.job import parse_job
    from jobrunner.store.status import RunRef

    store = Store.connect(azurite)
    ref = RunRef(experiment="wait", id="run-wait-0001")
    spec = parse_job("command: echo\nexperiment_name: wait\n", source="wait.yml")
    waited: list[str] = []
    rank_1 = threading.Thread(
        target=lambda: waited.append(
            open_tracking_run(store, ref, spec, tracking_server, pool="p", wait_s=30).run_id
        )
    )
    rank_1.start()
    rank_1.join(1.0)
    assert rank_1.is_alive() and read_record(store, ref) is None, "rank 1 waits and records nothing"
    made = open_tracking_run(store, ref, spec, tracking_server, pool="p").run_id
    rank_1.join(30)
    assert waited == [made]
    client = MlflowClient(tracking_uri=tracking_server)
    every = client.search_runs(
        [client.get_experiment_by_name("wait").experiment_id], run_view_type=ViewType.ALL
    )
    assert [r.info.run_id for r in every] == [made], "no run made and deleted by the waiting rank"


def test_a_rank_that_waited_in_vain_makes_the_run_itself(azurite: str, tracking_server: str) -> None:
    from jobrunner.spec.job import parse_job
    from jobrunner.store.status import RunRef

    store = Store.connect(azurite)
    ref = RunRef(experiment="alone", id="run-alone-0001")
    spec = parse_job("command: echo\nexperiment_name: alone\n", source="alone.yml")
    made = open_tracking_run(store, ref, spec, tracking_server, pool="p", wait_s=0.3)
    recorded = read_record(store, ref)
    assert recorded is not None and recorded.run_id == made.run_id
