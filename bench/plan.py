"""plan: `trainstack preview` time and peak memory for stacks of 1, 10 and 100 clusters and
as many datastores.

Each size is a generated stack file (the dev stack's workspace, N low-priority A100 clusters,
N blob datastores) in a temporary project beside this checkout's `__main__.py`, previewed
by the real command (`trainstack preview --json`, a fresh process each time, best of
`--rounds`). Peak memory is the process's maximum resident size. The cost per resource is
the marginal one: (time(100) - time(10)) / (resources(100) - resources(10)), against the
same between 1 and 10 (the baseline). Linear growth keeps their ratio near 1.

    .venv/bin/python bench/plan.py [--json] [--quick] [--rounds N]

Goal: flat cost per resource (ratio at most 1.5).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import PYTHON, REPO, Result, arguments, emit, progress

GOAL_RATIO = 1.5
TRAINSTACK = str(Path(PYTHON).parent / "trainstack")  # the console script `make setup` installs
HEADER = """\
config:
  azure-native:location: westeurope
  trainstack:environment: dev
  trainstack:workspace:
    name: mlw-bench
    resourceGroup: rg-bench
    publicNetworkAccess: true
    containerRegistry: false
"""


def stack_text(n: int) -> str:
    clusters = "".join(
        f"    - name: gpu-{i:03d}\n      vmSize: Standard_NC24ads_A100_v4\n      priority: LowPriority\n"
        f"      minNodes: 0\n      maxNodes: 4\n"
        for i in range(n)
    )
    datastores = "".join(
        f"    - name: data_{i:03d}\n      kind: blob\n      container: data-{i:03d}\n      auth: identity\n"
        for i in range(n)
    )
    return f"{HEADER}  trainstack:clusters:\n{clusters}  trainstack:datastores:\n{datastores}"


def preview(project: Path, stack: str) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, resources declared) of one `trainstack preview --json`."""
    argv = [TRAINSTACK, "preview", "--stack", stack, "--project-dir", str(project), "--json"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak memory
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"preview of {stack} failed: {err.read().decode()[-2000:]}")
        resources = json.load(out)["resources"]
    return elapsed, usage.ru_maxrss / 1024, sum(1 for r in resources if r["type"] != "pulumi:pulumi:Stack")


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--rounds", type=int, default=None, help="previews per size (default 2)")

    args = arguments(__doc__.splitlines()[0], extra)
    sizes = (1, 2, 3) if args.quick else (1, 10, 100)
    rounds = args.rounds or (1 if args.quick else 2)
    measured: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="trainstack-bench-") as tmp:
        project = Path(tmp)
        (project / "__main__.py").symlink_to(REPO / "__main__.py")
        (project / "Pulumi.yaml").symlink_to(REPO / "Pulumi.yaml")
        stacks = project / "stacks"
        stacks.mkdir()
        for n in sizes:
            (stacks / f"Pulumi.bench{n}.yaml").write_text(stack_text(n))
        preview(project, f"bench{sizes[0]}")  # warm-up: the first start reads every module from disk
        for n in sizes:
            runs = [preview(project, f"bench{n}") for _ in range(rounds)]
            seconds = min(r[0] for r in runs)
            measured[n] = {"seconds": round(seconds, 3), "peak_mib": round(max(r[1] for r in runs), 1),
                           "resources": runs[0][2]}  # fmt: skip
            progress(f"{n} clusters + {n} datastores: {measured[n]}")
    small, mid, large = (measured[n] for n in sizes)
    base = (mid["seconds"] - small["seconds"]) / (mid["resources"] - small["resources"])
    value = (large["seconds"] - mid["seconds"]) / (large["resources"] - mid["resources"])
    ratio = value / base if base > 0 else float("inf")
    emit(
        Result(
            name="plan",
            value=round(value * 1000, 2),
            baseline=round(base * 1000, 2),
            unit="ms/resource",
            goal=f"marginal cost per resource at {sizes[2]} within {GOAL_RATIO}x of that at {sizes[1]}",
            met=ratio <= GOAL_RATIO,
            detail={"sizes": {str(n): m for n, m in measured.items()}, "rounds": rounds},
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
