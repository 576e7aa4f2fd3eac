"""A local pool of 2 real agents over the session's Azurite that tracks into the session's MLflow
server, and one run of the MLflow example on it, shared by the tracking and browser tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jobrunner.local.tracking_server import TRACKING_ENV
from tests.runner.conftest import REPO, Cli

POOL = "tracked"
EXAMPLE = REPO / "examples" / "mlflow" / "job.yml"
STEPS = 50


@pytest.fixture(scope="session")
def tracked_pool(
    azurite: str, tracking_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cli]:
    """`jobrunner local-pool start --nodes 2 --pool tracked`, its agents pointed at the session's
    tracking server; commands of the returned Cli use that pool."""
    home = tmp_path_factory.mktemp("tracked-home")
    env = {
        **os.environ, "JOBRUNNER_STORE": azurite, "JOBRUNNER_HOME": str(home), "PYTHONPATH": str(REPO),
        "JOBRUNNER_POOL": POOL, TRACKING_ENV: tracking_server,
    }  # fmt: skip
    cli = Cli(env, tmp_path_factory.mktemp("tracked-submit-from"))
    cli.run("local-pool", "start", "--nodes", "2", "--pool", POOL, check=True)
    try:
        yield cli
    finally:
        cli.run("local-pool", "stop", "--pool", POOL, timeout=60)


@pytest.fixture(scope="session")
def example_run(tracked_pool: Cli) -> str:
    """The id of one finished run of examples/mlflow (2 nodes, 50 steps) on the tracked pool."""
    run_id = tracked_pool.submit(EXAMPLE, "--set", "inputs.step_seconds=0.05")
    status = tracked_pool.wait_state(run_id, {"succeeded", "failed", "canceled"}, timeout=240)
    assert status["state"] == "succeeded", tracked_pool.run("logs", run_id).stdout
    return run_id
