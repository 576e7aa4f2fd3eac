"""`needs_tool`: a test whose Debian tool is missing skips on a developer's machine and fails
under CI (`TRAINSTACK_CI=1`), where `make setup` should have installed it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TESTS = """
import pytest

@pytest.mark.needs_tool("no-such-tool-on-any-path", "no-such-package")
def test_missing() -> None:
    pass

@pytest.mark.needs_tool("sh", "dash")
def test_present() -> None:
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest("from tests.conftest import pytest_runtest_setup  # noqa: F401\n")
    pytester.makepyfile(TESTS)
    return pytester


def test_a_missing_tool_skips_outside_ci_and_names_the_package(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRAINSTACK_CI", raising=False)
    result = suite.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*no-such-tool-on-any-path is not on PATH*no-such-package*"])


def test_a_missing_tool_fails_under_ci(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINSTACK_CI", "1")
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*TRAINSTACK_CI=1, yet no-such-tool-on-any-path is not on PATH*"])
