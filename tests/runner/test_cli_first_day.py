"""`--help` and output as a new user reads them: a flag does not look like it takes a value,
every option says what it is for, and names with square brackets print as they are."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from jobrunner.cli.main import app as jobrunner_app
from tests.corpus import OWN_BATCHAI
from trainstack.cli import app as trainstack_app


def commands(app: typer.Typer) -> list[list[str]]:
    """Every leaf command of `app`, as the words that name it."""
    out: list[list[str]] = []

    def walk(command: Any, words: list[str]) -> None:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                walk(sub, [*words, name])
        else:
            out.append(words)

    walk(typer.main.get_command(app), [])
    return out


ALL = [("jobrunner", c) for c in commands(jobrunner_app)] + [
    ("trainstack", c) for c in commands(trainstack_app)
]


@pytest.mark.parametrize(("tool", "words"), ALL, ids=[" ".join([t, *w]) for t, w in ALL])
def test_flags_read_as_flags_and_every_option_says_what_it_is_for(tool: str, words: list[str]) -> None:
    app = jobrunner_app if tool == "jobrunner" else trainstack_app
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    for line in result.output.splitlines():
        option = re.match(r"^│ (--[a-z-]+)\s+(?:<[^>]+>\s+)?(.*?)\s*│$", line)
        if option:
            assert option[2] and not option[2].startswith("["), f"{option[1]} has no help: {line}"


def test_migrate_prints_file_names_with_brackets_as_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    (folder / "jobs").mkdir(parents=True)
    shutil.copy(OWN_BATCHAI / "jobs" / "horovod-four-nodes.json", folder / "jobs" / "[bold]horovod.json")
    (folder / "jobs" / "[red]broken.json").write_text(json.dumps({"properties": {"nodeCount": "two"}}))
    result = CliRunner().invoke(
        trainstack_app, ["migrate", "batchai", str(folder), "--out", str(tmp_path / "o")]
    )
    assert "[bold]horovod.json" in result.output and "[red]broken.json" in result.output, result.output
    assert result.exit_code == 1  # one file is invalid, said below the table
    single = CliRunner().invoke(
        trainstack_app,
        [
            "migrate",
            "batchai",
            "--job",
            str(folder / "jobs" / "[bold]horovod.json"),
            "--out",
            str(tmp_path / "[x]"),
        ],
        env={"COLUMNS": "400"},  # a long temporary path on one line, however deep pytest puts it
    )
    assert single.exit_code == 0 and f"wrote {tmp_path / '[x]'}" in single.output, single.output
