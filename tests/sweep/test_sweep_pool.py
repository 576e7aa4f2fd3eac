"""Sweeps end to end on one shared pool of 3 real agent processes over the session's Azurite,
tracking into the session's MLflow server: a seeded random sweep, a grid sweep with bandit
termination, the corpus's hello-sweep, and a sweep whose driving agent (the pool's leader)
is killed with SIGKILL. Each trial is a `python -c` that logs `loss` with plain MLflow."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobrunner.local.tracking_server import TRACKING_ENV
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.scheduler.report import read_report
from jobrunner.store.client import Store
from jobrunner.store.pool_config import PoolConfig, write_pool_config
from jobrunner.tracking.metrics_view import run_metrics
from tests.corpus import AML_SWEEPS, corpus_files, needs_corpus
from tests.faults.pool import FaultPool, wait_for

POOL = "sweeps"
LIMITS = {"max_total_trials": 4, "max_concurrent_trials": 2}
GRID = {"x": {"type": "choice", "values": [0.1, 0.5, 0.9]}, "y": {"type": "choice", "values": [0, 1]}}
BANDIT = {"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 1, "delay_evaluation": 1}
TERMINAL = {"succeeded", "failed", "canceled"}
# loss = (x - 0.3)^2 + y / (step + 1), logged at steps 0..2
TRAIN = (
    "import sys, time, mlflow\n"
    "x, y = float(sys.argv[1]), float(sys.argv[2])\n"
    "for step in range(3):\n"
    "    mlflow.log_metric('loss', (x - 0.3) ** 2 + y / (step + 1), step=step)\n"
    "    time.sleep(0.1)\n"
)


@pytest.fixture(scope="module")
def pool(azurite: str, tracking_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultPool]:
    home = tmp_path_factory.mktemp("sweep-pool")
    pool = FaultPool(azurite, home, POOL, 3, extra_env={TRACKING_ENV: tracking_server}).start()
    # the corpus's registered environment resolves through the pool's map; its nodes run
    # commands on the node (no container runtime here)
    mapping = {"sklearn-1.0": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"}
    write_pool_config(
        Store.connect(azurite), PoolConfig(name=POOL, max_nodes=3, containers=False, environments=mapping)
    )
    try:
        yield pool
    finally:
        for agent in pool.agent_names():  # no graceful stop to wait for: nothing runs by now
            if pool.alive(agent):
                pool.kill(agent)


@dataclass(frozen=True)
class Swept:
    """The sweeps run at once on the pool, and what the kill of its leader found."""

    ids: dict[str, str]  # which sweep -> its id
    final: dict[str, dict[str, Any]]  # its `status --json` once it ended
    killed: str  # the agent that led (drove every sweep) when it was killed
    trials_at_kill: int  # trials the random and grid sweeps had then
    leader_after: str


@pytest.fixture(scope="module")
def swept(pool: FaultPool, tmp_path_factory: pytest.TempPathFactory) -> Swept:
    """Every sweep of this module submitted at once (the trials are the slow part): a seeded
    random sweep, a grid sweep with bandit termination and, with the corpus, its
    hello-sweep; the pool's leader, which drives them, is killed with SIGKILL as soon as
    the random sweep has its first trials, and restarted as a new incarnation."""
    folder = tmp_path_factory.mktemp("sweeps")
    files = {
        "random": _sweep_file(
            folder / "random", sampling_algorithm={"type": "random", "seed": 11}, limits=LIMITS
        ),
        "grid": _sweep_file(
            folder / "grid",
            sampling_algorithm="grid",
            search_space=GRID,
            early_termination=BANDIT,
            limits={"max_total_trials": 10, "max_concurrent_trials": 3},
        ),  # fmt: skip
    }
    for path in corpus_files(AML_SWEEPS, "*hello-sweep*.yml"):
        files["hello"] = _corpus_copy(path, folder / "hello")
    ids = {name: pool.cli.submit(path, "--pool", POOL) for name, path in files.items()}
    try:
        wait_for("the first trials", lambda: pool.cli.json("status", ids["random"])["trials"], timeout=60)
    except AssertionError:
        raise AssertionError(pool.dump()) from None
    store = Store.connect(pool.store)
    said = read_report(AzurePoolStore(store, POOL))
    assert said is not None
    killed = said[0].leader
    pool.kill(killed)
    trials_at_kill = sum(len(pool.cli.json("status", ids[name])["trials"]) for name in ("random", "grid"))
    pool.start_agent(killed)
    final = {}
    for name, sweep_id in ids.items():
        try:
            pool.cli.wait_state(sweep_id, TERMINAL, timeout=180)
        except AssertionError:
            raise AssertionError(pool.dump()) from None
        final[name] = pool.cli.json("status", sweep_id)
    after = read_report(AzurePoolStore(store, POOL))
    return Swept(ids, final, killed, trials_at_kill, after[0].leader if after else "")


def _sweep_file(folder: Path, **changes: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "train.py").write_text(TRAIN)
    data = {
        "type": "sweep",
        "trial": {"command": "python train.py ${{search_space.x}} ${{search_space.y}}", "code": "src"},
        "search_space": {
            "x": {"type": "uniform", "min_value": 0, "max_value": 1},
            "y": {"type": "choice", "values": [0, 1]},
        },
        "objective": {"goal": "minimize", "primary_metric": "loss"},
        "experiment_name": "sweep-pool",
        **changes,
    }
    path = folder / "sweep.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _corpus_copy(path: Path, folder: Path) -> Path:
    """The corpus file as it is, beside a stand-in for the script it names (what
    azureml-examples' hello-sweep.py does: log the parameters' metric with plain MLflow)."""
    (folder / "src").mkdir(parents=True)
    copy = folder / path.name
    shutil.copy(path, copy)
    (folder / "src" / "hello-sweep.py").write_text(
        "import argparse, mlflow\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--A', type=float); p.add_argument('--B'); p.add_argument('--C', type=float)\n"
        "a = p.parse_args()\n"
        "mlflow.log_metric('random_metric', a.A * a.C + len(a.B))\n"
    )
    return copy


def _succeeded(pool: FaultPool, sweep: dict[str, Any]) -> None:
    if sweep["state"] != "succeeded":
        first = sweep["trials"][0]["id"] if sweep["trials"] else sweep["id"]
        raise AssertionError(
            f"{sweep}\n{pool.cli.run('status', first).stdout}{pool.cli.run('logs', first).stdout}"
        )


def _most_at_once(pool: FaultPool, trial_ids: list[str]) -> int:
    """The most trials that ran at the same time, from their own status documents."""
    edges = []
    for run in trial_ids:
        s = pool.cli.json("status", run)
        if s["started_at"]:
            edges += [
                (datetime.fromisoformat(s["started_at"]), 1),
                (datetime.fromisoformat(s["finished_at"]), -1),
            ]
    running = most = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        most = max(most, running)
    return most


def _check_best(pool: FaultPool, sweep: dict[str, Any], metric: str) -> None:
    """The reported best is the best value that any trial logged, read from MLflow."""
    store = Store.connect(pool.store)
    logged = {}
    for t in sweep["trials"]:
        metrics = run_metrics(store, t["id"])
        points = metrics.metrics.get(metric, []) if metrics else []
        if points:
            logged[t["id"]] = min(p.value for p in points)
    assert logged, sweep
    best_id = min(logged, key=lambda k: logged[k])
    assert sweep["best"]["metric"] == pytest.approx(logged[best_id])
    assert logged[sweep["best"]["id"]] == pytest.approx(logged[best_id])


def test_a_seeded_random_sweep_runs_within_its_limits(pool: FaultPool, swept: Swept) -> None:
    sweep = swept.final["random"]
    _succeeded(pool, sweep)
    trials = sweep["trials"]
    assert [t["index"] for t in trials] == [0, 1, 2, 3]
    assert all(t["state"] == "succeeded" for t in trials), trials
    assert _most_at_once(pool, [t["id"] for t in trials]) <= 2
    _check_best(pool, sweep, "loss")
    assert f"best trial {sweep['best']['id']}" in sweep["reason"]


def test_a_grid_sweep_with_bandit_covers_each_combination_once(pool: FaultPool, swept: Swept) -> None:
    sweep = swept.final["grid"]
    _succeeded(pool, sweep)
    combos = [(t["params"]["x"], t["params"]["y"]) for t in sweep["trials"]]
    assert sorted(combos) == sorted(itertools.product([0.1, 0.5, 0.9], [0, 1]))
    assert _most_at_once(pool, [t["id"] for t in sweep["trials"]]) <= 3
    stopped = [t for t in sweep["trials"] if t["state"] == "canceled"]
    assert all("bandit" in (t["stop_reason"] or "") for t in stopped), stopped
    _check_best(pool, sweep, "loss")
    listed = pool.cli.run("list", "--experiment", "sweep-pool", check=True).stdout
    assert f"└ {sweep['trials'][0]['id']}" in listed


@needs_corpus
def test_the_corpus_hello_sweep_runs_given_an_environment_mapping(pool: FaultPool, swept: Swept) -> None:
    sweep = swept.final["hello"]
    _succeeded(pool, sweep)
    assert len(sweep["trials"]) == 4
    _check_best(pool, sweep, "random_metric")


def test_every_sweep_survives_sigkill_of_the_agent_driving_it(pool: FaultPool, swept: Swept) -> None:
    assert swept.trials_at_kill < LIMITS["max_total_trials"] + len(GRID["x"]["values"]) * len(
        GRID["y"]["values"]
    )  # killed mid-sweep
    assert swept.leader_after  # a leader again, which finished the sweeps
    runs = pool.cli.json("list")
    for name, sweep_id in swept.ids.items():
        trials = swept.final[name]["trials"]
        ids = [t["id"] for t in trials]
        assert ids == [f"{sweep_id}-t{i}" for i in range(len(trials))], name
        assert sorted(r["id"] for r in runs if r["parent"] == sweep_id) == sorted(ids), (
            name
        )  # nothing doubled
    assert len(swept.final["random"]["trials"]) == LIMITS["max_total_trials"]  # nothing lost


@pytest.mark.needs_tool("chromium", "chromium")
def test_the_run_page_shows_the_trials_and_a_plot_of_metric_against_each_parameter(
    pool: FaultPool, swept: Swept, tmp_path: Path
) -> None:
    from tests.tracking.test_browser import chromium, ui_server

    sweep = swept.final["random"]
    with ui_server(pool.env) as url:
        dom = chromium(f"{url}/runs/{sweep['id']}", tmp_path / "profile")
    for t in sweep["trials"]:
        assert f'data-trial="{t["id"]}"' in dom
    assert f'data-trial="{sweep["best"]["id"]}" class="best"' in dom
    for name in ("x", "y"):
        assert f'data-plot="loss by {name}" data-points="4"' in dom, dom[-3000:]
