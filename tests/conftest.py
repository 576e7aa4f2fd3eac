"""Fixtures every test suite may use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobrunner.azurite import start_azurite


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
