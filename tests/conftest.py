"""Fixtures every test suite may use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobrunner.azurite import start_azurite
from tests.runner.http_inputs import misbehaving_http  # noqa: F401 - a fixture for every suite


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


def pytest_configure(config: pytest.Config) -> None:
    """CI (`TRAINSTACK_REQUIRE_CORPUS=1`) stops here, in one line, when the corpus is missing."""
    try:
        import tests.corpus  # noqa: F401
    except RuntimeError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    from tests.corpus import CORPUS, PRESENT, REASON

    return f"corpus: {CORPUS}" if PRESENT else f"corpus: {REASON}: corpus tests skip"
