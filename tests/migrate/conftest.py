"""A 2-agent local pool of its own for the end-to-end migration tests: the same kind as the
runner's (`tests/runner/conftest.py`), on the session's Azurite, under another pool name so
that the two pools never serve each other's queue when both suites run in one session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.runner.conftest import REPO, Cli

POOL = "batchai"


@pytest.fixture(scope="session")
def pool_env(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """`jobrunner local-pool start --nodes 2 --pool batchai`; every command targets that pool."""
    home = tmp_path_factory.mktemp("batchai-home")
    env = {
        **os.environ,
        "JOBRUNNER_STORE": azurite,
        "JOBRUNNER_HOME": str(home),
        "JOBRUNNER_POOL": POOL,
        "PYTHONPATH": str(REPO),
    }
    cli = Cli(env, tmp_path_factory.mktemp("batchai-submit-from"))
    cli.run("local-pool", "start", "--nodes", "2", "--pool", POOL, check=True)
    try:
        yield cli
    finally:
        cli.run("local-pool", "stop", "--pool", POOL, timeout=60)
