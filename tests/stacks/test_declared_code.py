"""A declared run's code goes up as the files a pool's submit would pack: `.amlignore` (else
`.gitignore`) applies, and nothing a link reaches outside the code folder is uploaded."""

from __future__ import annotations

import os
from pathlib import Path

import pulumi
import pytest

from components.config import ExperimentConfig
from components.experiment import DeclaredRun, Experiment
from jobrunner.errors import ConfigError
from jobrunner.spec.job import load_job
from tests.stacks.test_components import REF
from trainstack.plan import record_program


def _uploaded(tmp_path: Path) -> set[str]:
    (tmp_path / "job.yml").write_text("command: python train.py\ncode: src\n")
    spec = load_job(tmp_path / "job.yml")
    config = ExperimentConfig.model_validate({"name": "exp", "environment": {"image": "python:3.11"}})

    def build() -> None:
        run = DeclaredRun("run", spec, pulumi.Output.from_input("/computes/gpu"), 1)
        Experiment("exp", config, workspace=REF, runs=[run], code_account="stcode")

    plan = record_program(build, stack_name="test")
    return {b.inputs["blobName"].split("/", 1)[1] for b in plan.of_type("azure-native:storage:Blob")}


def _code(tmp_path: Path, ignore: tuple[str, str] | None) -> Path:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print('train')\n")
    (src / "pkg" / "model.py").write_text("x = 1\n")
    (src / ".env").write_text("STORAGE_KEY=secret\n")
    (src / "debug.log").write_text("noise\n")
    if ignore is not None:
        (src / ignore[0]).write_text(ignore[1])
    return src


@pytest.mark.parametrize("ignore_file", [".amlignore", ".gitignore"])
def test_the_ignore_file_keeps_secrets_and_noise_out(tmp_path: Path, ignore_file: str) -> None:
    _code(tmp_path, (ignore_file, ".env\n*.log\n"))
    assert _uploaded(tmp_path) == {ignore_file, "train.py", "pkg/model.py"}


def test_amlignore_wins_over_gitignore(tmp_path: Path) -> None:
    src = _code(tmp_path, (".amlignore", ".env\n"))
    (src / ".gitignore").write_text("train.py\n")
    assert _uploaded(tmp_path) == {".amlignore", ".gitignore", "train.py", "pkg/model.py", "debug.log"}


def test_a_link_out_of_the_code_folder_uploads_nothing(tmp_path: Path) -> None:
    src = _code(tmp_path, (".amlignore", ".env\n"))
    (tmp_path / "home-secrets").write_text("id_rsa\n")
    os.symlink(tmp_path / "home-secrets", src / "notes.txt")
    with pytest.raises(ConfigError, match="outside the code folder"):
        _uploaded(tmp_path)
    # listed in .amlignore, the link is left behind and the rest goes up
    (src / ".amlignore").write_text(".env\nnotes.txt\n")
    assert "notes.txt" not in _uploaded(tmp_path)


def test_a_link_inside_the_folder_uploads_its_target_once_more(tmp_path: Path) -> None:
    src = _code(tmp_path, (".amlignore", ".env\n*.log\n"))
    os.symlink("pkg/model.py", src / "model_link.py")
    assert _uploaded(tmp_path) == {".amlignore", "train.py", "pkg/model.py", "model_link.py"}
