"""Whether the Python environment running the tests is the one `pyproject.toml` pins.

A checkout updated with `git pull` while its `.venv` stays as it was (or any other Python
picked by hand) would otherwise fail at collection with one ImportError per test module that
needs a new package: `stale_requirements` names them all at once, and the root conftest stops
the run with that one line and the fix.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version


def stale_requirements(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> list[str]:
    """The pinned requirements of `pyproject` (its dependencies and `extras`) that the running
    environment does not satisfy, each as `name (not installed)` or `name installed, wants ...`."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = list(project.get("dependencies", []))
    for extra in extras:
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    stale = []
    for line in dict.fromkeys(wanted):
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            stale.append(f"{req.name} (not installed)")
            continue
        if not req.specifier.contains(Version(installed), prereleases=True):
            stale.append(f"{req.name} {installed} installed, wants {req.specifier}")
    return stale
