"""The check that stops a test run on an environment older than pyproject.toml's pins."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from tests.environment import stale_requirements

ROOT = Path(__file__).resolve().parents[2]


def pyproject(tmp_path: Path, deps: list[str], dev: list[str] | None = None) -> Path:
    path = tmp_path / "pyproject.toml"
    text = "[project]\nname = 'x'\ndependencies = [" + ", ".join(f'"{d}"' for d in deps) + "]\n"
    if dev is not None:
        text += "[project.optional-dependencies]\ndev = [" + ", ".join(f'"{d}"' for d in dev) + "]\n"
    path.write_text(text)
    return path


def test_the_projects_own_environment_satisfies_its_pins() -> None:
    assert stale_requirements(ROOT / "pyproject.toml") == []


def test_a_missing_package_and_a_wrong_version_are_named(tmp_path: Path) -> None:
    have = version("pytest")
    path = pyproject(tmp_path, [f"pytest=={have}", "no-such-package-here==1.0"], ["pytest==0.0.1"])
    assert stale_requirements(path) == [
        "no-such-package-here (not installed)",
        f"pytest {have} installed, wants ==0.0.1",
    ]
    assert stale_requirements(path, extras=()) == ["no-such-package-here (not installed)"]


def test_a_local_build_label_satisfies_its_pin(tmp_path: Path) -> None:
    torch = version("torch")  # the CPU build is 2.13.0+cpu, pinned as torch==2.13.0
    assert stale_requirements(pyproject(tmp_path, [f"torch=={torch.split('+')[0]}"])) == []
