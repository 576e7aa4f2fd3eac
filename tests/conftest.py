"""Fixtures every test suite may use."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jobrunner.azurite import start_azurite
from jobrunner.tracking_server import NO_TRACKING, TRACKING_ENV, start_tracking_server


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


@pytest.fixture(scope="session", autouse=True)
def _untracked_local_pools() -> None:
    """Local pools started by tests track nothing unless a test points them at the session's
    tracking server (`tracking_server`): an MLflow server per pool would cost seconds each."""
    os.environ.setdefault(TRACKING_ENV, NO_TRACKING)


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on a free loopback port for the whole session; yields its URI."""
    server = start_tracking_server(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server.uri
    finally:
        server.stop()
