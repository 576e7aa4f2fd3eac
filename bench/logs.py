"""logs: a job printing 200,000 lines, on a 1-agent local pool and straight into /dev/null.

The job (a Python loop of `print`) times itself from its first line to its last, flushed,
and writes that time to a file. The baseline is the same script run directly with its
output to /dev/null, as a user would run it, and once more with `PYTHONUNBUFFERED=1` (what a
pool's processes get, so that logs arrive as written). Lines per second reaching the store:
200,000 over the time from the job's first line until the log blob holds every byte.

    .venv/bin/python bench/logs.py [--json] [--quick] [--lines N]

Goal: the job at most 5 % slower on the pool than into /dev/null.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    PYTHON,
    Result,
    arguments,
    emit,
    local_pool,
    progress,
    wait_until_done,
    workspace,
    write_job,
)

from jobrunner.errors import NotFoundError
from jobrunner.store import RUNS

GOAL_SLOWDOWN = 0.05
LINE = "step {i:07d} loss 0.123456 lr 0.000100 throughput 1234.5 samples/s"
SCRIPT = f"""\
import sys, time
n, out = int(sys.argv[1]), sys.argv[2]
started = time.time()
for i in range(n):
    print({LINE!r}.format(i=i))
sys.stdout.flush()
ended = time.time()
open(out, "w").write(f"{{started}} {{ended}}")
"""


def expected_bytes(lines: int) -> int:
    return sum(len(LINE.format(i=i)) + 1 for i in range(lines))


def direct(script: Path, lines: int, out: Path, *, unbuffered: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    with open(os.devnull, "wb") as null:
        subprocess.run([PYTHON, str(script), str(lines), str(out)], stdout=null, env=env, check=True)
    started, ended = map(float, out.read_text().split())
    return ended - started


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--lines", type=int, default=None, help="lines to print (default 200000)")
        parser.add_argument("--rounds", type=int, default=None, help="runs of each (default 3)")

    args = arguments(__doc__.splitlines()[0], extra)
    lines = args.lines or (2000 if args.quick else 200_000)
    rounds = args.rounds or (1 if args.quick else 3)
    size = expected_bytes(lines)
    plain, unbuffered, pool, arrival = [], [], [], []
    with workspace() as ws, local_pool(1):
        client = ws.client()
        code = ws.folder("code")
        (code / "printer.py").write_text(SCRIPT)
        for r in range(rounds):
            plain.append(direct(code / "printer.py", lines, ws.root / "direct.txt", unbuffered=False))
            unbuffered.append(direct(code / "printer.py", lines, ws.root / "direct.txt", unbuffered=True))
            timing = ws.root / f"pool-{r}.txt"
            job = write_job(
                ws.folder("jobs"), f"logs-{r}.yml",
                f"command: {sys.executable} printer.py {lines} {timing}\ncode: {code}\n",
            )  # fmt: skip
            run = client.submit(job)
            blob = f"{run.ref.logs_prefix(1)}node-0.txt"
            arrived = None
            while arrived is None:
                try:
                    if client.store.size(RUNS, blob) >= size:
                        arrived = time.time()
                except NotFoundError:
                    pass
                time.sleep(0.05)
            status = wait_until_done(client, run.id)
            if status.state.value != "succeeded":
                raise RuntimeError(f"{run.id} ended {status.state.value}: {status.reason}")
            started, ended = map(float, timing.read_text().split())
            pool.append(ended - started)
            arrival.append(arrived - started)
            progress(
                f"round {r + 1}: /dev/null {plain[-1]:.3f} s (unbuffered {unbuffered[-1]:.3f} s), "
                f"pool {pool[-1]:.3f} s, in the store after {arrival[-1]:.3f} s"
            )
    base, value = statistics.median(plain), statistics.median(pool)
    slowdown = value / base - 1
    emit(
        Result(
            name="logs",
            value=round(value, 4),
            baseline=round(base, 4),
            unit="s",
            goal=f"job printing {lines} lines at most {GOAL_SLOWDOWN:.0%} slower than into /dev/null",
            met=slowdown <= GOAL_SLOWDOWN,
            detail={
                "lines": lines,
                "bytes": size,
                "slowdown": round(slowdown, 4),
                "slowdown_vs_unbuffered_devnull": round(value / statistics.median(unbuffered) - 1, 4),
                "lines_per_s_to_store": round(lines / statistics.median(arrival)),
                "job_s": {"devnull": plain, "devnull_unbuffered": unbuffered, "pool": pool},
                "store_arrival_s": arrival,
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
