"""Every `jobrunner` command has --help with an example."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jobrunner.cli import app

COMMANDS = [
    ["submit"], ["status"], ["list"], ["logs"], ["cancel"], ["outputs"], ["agent"],
    ["local-pool", "start"], ["local-pool", "status"], ["local-pool", "stop"],
    ["pool", "status"], ["data", "upload"], ["data", "download"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "jobrunner " + command[0] in result.output


def test_bad_set_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["submit", str(tmp_path / "x.yml"), "--set", "nonsense", "--dry-run"])
    assert result.exit_code == 1 and "KEY=VALUE" in result.output


def test_dry_run_needs_no_store(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("JOBRUNNER_STORE", "https://unreachable.blob.core.windows.net")
    job = tmp_path / "job.yml"
    job.write_text("command: echo hi\nresources:\n  instance_count: 2\n")
    result = CliRunner().invoke(app, ["submit", str(job), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert "echo hi" in result.output
