"""What an agent learns about its node at start: GPUs (through `nvidia-smi`), CPUs, and
whether a container engine answers (the `docker` binary alone does not count)."""

from __future__ import annotations

import os
import shutil
import subprocess

from jobrunner.api import NodeFacts

_PROBE_TIMEOUT_S = 15


def detect_node_facts(name: str, address: str) -> NodeFacts:
    """The facts of this machine, named `name` and reachable at `address`.

    Never fails: a missing or broken `nvidia-smi` means no GPUs; a `docker info` that fails or
    hangs means no container runtime.
    """
    gpus, model = detect_gpus()
    return NodeFacts(
        name=name,
        address=address,
        gpus=gpus,
        gpu_model=model,
        cpus=_cpus(),
        container_runtime=container_runtime_works(),
    )


def detect_gpus() -> tuple[int, str | None]:
    """(number of GPUs, model of the first) as `nvidia-smi` lists them; (0, None) without it."""
    out = _probe(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    names = [line.strip() for line in (out or "").splitlines() if line.strip()]
    return len(names), (names[0] if names else None)


def container_runtime_works() -> bool:
    """True when a Docker engine answers `docker info`, not merely when the binary exists."""
    return _probe(["docker", "info", "--format", "{{.ServerVersion}}"]) is not None


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (cgroups, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def _probe(argv: list[str]) -> str | None:
    """`argv`'s stdout when it exits 0 within the timeout, else None."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
