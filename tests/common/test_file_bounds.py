"""Files past the bounds (over 1 MiB, YAML alias bombs, nesting past 64 levels, more nodes than
a pool can have, variable names a process cannot take, NUL bytes) are refused by the real
commands, as subprocesses, with one line that names the file: no traceback, nothing planned."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobrunner.errors import ConfigError
from jobrunner.files import MAX_DEPTH, MAX_VALUES, parse_mapping

ROOT = Path(__file__).resolve().parents[2]


def bomb(levels: int = 9) -> str:
    """`levels` anchors of ten aliases each: 10**levels values in a few hundred bytes."""
    lines = ["  l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def run(tool: str, *args: str, cwd: Path, store: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOBRUNNER_STORE": store,
        "JOBRUNNER_HOME": str(cwd / "home"),
    }
    return subprocess.run(
        [sys.executable, "-m", tool, *args] if tool == "jobrunner" else [sys.executable, "-c",
         "from trainstack.cli import main; main()", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode != 0 and "Traceback" not in done.stderr + done.stdout, done
    text = (done.stderr + done.stdout).strip()
    assert len(text.splitlines()) == 1, text
    for word in words:
        assert word in text, text
    return text


JOBS = {
    "tags-bomb.yml": "command: echo hi\ntags:\n" + bomb(),
    "deep.yml": "command: echo hi\ntags:\n  x: " + deep(3000) + "\n",
    "big.yml": "command: echo hi\n" + "# padding\n" * 120_000,
    "huge-gang.yml": "command: echo hi\nresources:\n  instance_count: 100000000\n",
    "tf-tasks.yml": "command: echo hi\ndistribution: {type: tensorflow, parameter_server_count: 100000000}\n",
    "env-name.yml": "command: echo hi\nenvironment_variables:\n  A=B: x\n",
    "env-space.yml": "command: echo hi\nenvironment_variables:\n  'MY VAR': x\n",
    "nul.yml": 'command: "echo \\0 hi"\n',
}
EXPECTED = {
    "tags-bomb.yml": f"more than {MAX_VALUES} values once its YAML aliases are expanded",
    "deep.yml": f"nests deeper than {MAX_DEPTH} levels",
    "big.yml": "a job file may be at most 1048576 (1 MiB)",
    "huge-gang.yml": "resources.instance_count: asks for 100000000 nodes; no pool has more than 1000",
    "tf-tasks.yml": "distribution.tensorflow.parameter_server_count: Input should be less than or equal to 8000",  # noqa: E501
    "env-name.yml": "environment_variables: `A=B` is not an environment variable name",
    "env-space.yml": "environment_variables: `MY VAR` is not an environment variable name",
    "nul.yml": "command: holds a NUL byte",
}


@pytest.mark.parametrize("name", sorted(JOBS))
@pytest.mark.parametrize("how", ["--dry-run", "submit"])
def test_bad_job_file_is_one_line_naming_it(
    tmp_path: Path, name: str, how: str, request: pytest.FixtureRequest
) -> None:
    job = tmp_path / name
    job.write_text(JOBS[name])
    store = request.getfixturevalue("azurite") if how == "submit" else ""
    args = (
        ["submit", str(job), "--dry-run"] if how == "--dry-run" else ["submit", str(job), "--pool", "nowhere"]
    )
    one_line_error(run("jobrunner", *args, cwd=tmp_path, store=store), str(job), EXPECTED[name])


def test_stack_file_bomb_under_another_providers_key_is_refused(tmp_path: Path) -> None:
    shutil.copy(ROOT / "__main__.py", tmp_path / "__main__.py")
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    path = tmp_path / "stacks" / "Pulumi.dev.yaml"
    path.write_text(path.read_text() + "  other:setting:\n" + bomb().replace("  l", "    l"))
    done = run("trainstack", "validate", "--stack", "dev", "--project-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done
    assert f"{path}: stack file stands for more than {MAX_VALUES} values" in done.stdout


def test_batchai_file_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"properties": {}})[:-2] + '"x": ' + deep(5000) + "}}")
    done = run(
        "trainstack", "migrate", "batchai", "--job", str(job), "--out", str(tmp_path / "o"), cwd=tmp_path
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout, done
    assert f"{job}: Batch AI file nests deeper than {MAX_DEPTH} levels" in done.stdout + done.stderr


def test_aliases_within_the_bound_still_load() -> None:
    text = "base: &b {lr: 0.1, epochs: 3}\nsmall: *b\nlarge: *b\nlist: &l [1, 2]\nmore: [*l, *l]\n"
    data = parse_mapping(text, source="ok.yml")
    assert data["large"] == {"lr": 0.1, "epochs": 3} and data["more"] == [[1, 2], [1, 2]]
    assert parse_mapping("a: " + deep(MAX_DEPTH - 1) + "\n", source="ok.yml")


def test_an_alias_that_contains_itself_is_refused() -> None:
    with pytest.raises(ConfigError, match="an alias must not contain itself"):
        parse_mapping("a: &a [1, *a]\n", source="loop.yml")


def test_a_set_value_nested_past_any_bound_is_kept_as_text(tmp_path: Path) -> None:
    job = tmp_path / "job.yml"
    job.write_text("command: echo ${{inputs.x}}\ninputs: {x: 1}\n")
    done = run(
        "jobrunner",
        "submit",
        str(job),
        "--dry-run",
        "--json",
        "--set",
        "inputs.x=" + "[" * 3000,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done
    (node,) = json.loads(done.stdout)
    assert node["processes"][0]["argv"][-1] == "echo " + "[" * 3000
