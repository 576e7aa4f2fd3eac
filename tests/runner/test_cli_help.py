"""Every `jobrunner` command has --help with an example."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jobrunner.cli.main import app

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


def test_the_agent_options_show_the_defaults_the_agent_settings_hold() -> None:
    """The agent's defaults live in its settings (`AgentSettings`); `--help` only says them."""
    import re

    from typer.testing import CliRunner

    from jobrunner.cli.main import app
    from jobrunner.node.agent import AgentSettings

    settings = AgentSettings(pool="p", name="n")
    shown = CliRunner().invoke(app, ["agent", "--help"], env={"COLUMNS": "400"}).output
    expected = {
        "--heartbeat-s": settings.protocol.beat_idle_s, "--stale-after-s": settings.protocol.stale_after_s,
        "--status-poll-s": settings.timing.status_poll_s, "--sync-s": settings.timing.sync_s,
        "--terminate-grace-s": settings.timing.terminate_grace_s,
    }  # fmt: skip
    for option, value in expected.items():
        found = re.search(re.escape(option) + r".*?\[default: ([0-9.]+)\]", shown, re.S)
        assert found is not None and float(found.group(1)) == value, (option, shown)
