"""Fixtures every test suite may use."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.local.azurite import start_azurite
from jobrunner.local.tracking_server import NO_TRACKING, TRACKING_ENV, start_tracking_server
from tests.runner.http_inputs import loopback_tls, misbehaving_http  # noqa: F401 - fixtures for every suite

pytest_plugins = ["pytester"]  # tests of this file's hooks run small suites of their own

CI_ENV = "TRAINSTACK_CI"  # .ci/run sets it: the machine went through `make setup`


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs_tool("mpirun", "openmpi-bin")`: a test whose tool is not on PATH is
    skipped, except under CI (`TRAINSTACK_CI=1`), where `make setup` installed the Debian
    package: there the missing tool fails the test instead of hiding it as a skip."""
    for mark in item.iter_markers("needs_tool"):
        tool, package = mark.args
        if shutil.which(tool) is None:
            why = f"{tool} is not on PATH (`make setup` installs the Debian package {package})"
            if os.environ.get(CI_ENV) == "1":
                pytest.fail(f"{CI_ENV}=1, yet {why}", pytrace=False)
            pytest.skip(why)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Azurite (blob + queue) on free loopback ports for the whole session.

    Yields its connection string; the emulator and its temporary data go away at the end.
    """
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server.connection_string
    finally:
        server.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The run stops here, in one line, when the environment is not the one pyproject.toml
    pins (a `.venv` older than the checkout), or under CI (`TRAINSTACK_CI=1`) when the corpus
    is missing."""
    from tests.environment import stale_requirements

    stale = stale_requirements(Path(__file__).resolve().parents[1] / "pyproject.toml")
    if stale:
        raise pytest.UsageError(
            f"this Python ({sys.executable}) does not have what pyproject.toml pins: "
            + "; ".join(stale)
            + " (run `make setup`, or `.venv/bin/pip install -e '.[dev]'`)"
        )
    try:
        import tests.corpus  # noqa: F401
    except RuntimeError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    from tests.corpus import CORPUS, PRESENT, REASON

    return f"corpus: {CORPUS}" if PRESENT else f"corpus: {REASON}: corpus tests skip"


@pytest.fixture(scope="session", autouse=True)
def _untracked_local_pools() -> None:
    """Local pools started by tests track nothing unless a test points them at the session's
    tracking server (`tracking_server`): an MLflow server per pool would cost seconds each."""
    os.environ.setdefault(TRACKING_ENV, NO_TRACKING)


@pytest.fixture(scope="session")
def tracking_server(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on a free loopback port for the whole session, keeping the
    artifacts of runs tracked in the session's Azurite beside their outputs; yields its URI."""
    server = start_tracking_server(tmp_path_factory.mktemp("mlflow"), store=azurite)
    try:
        yield server.uri
    finally:
        server.stop()
