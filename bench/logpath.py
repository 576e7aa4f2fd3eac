"""logpath: the CPU seconds the agent spends on a job's output, by the kind of output.

The node's log path as an attempt wires it (`jobrunner.node.launch.run_plan` reading the pipes,
the stream index, the spool and its shipper to a private Azurite, Batch AI's per-process
files), run in this process around a real job, so that `time.process_time()` counts the
agent side only (the job is a child process): readers, shipper, the launcher's own loop.
The baseline is the bare launcher in the same run: the same job, its output read and
dropped (a sink that does nothing). Kinds of output:

- `stdout` / `stderr`: 200,000 lines printed as fast as Python can (13.4 MB), on one stream;
  stderr also feeds the tail of lines a failure reason quotes;
- `both`: the same lines on stdout and stderr in turn (the stream index notes every switch);
- `steady`: a line every 2 ms for 4 s on stdout, a training loop that logs every step.

`value` is the agent's CPU seconds per second of the `steady` job (the issue's goal: under
0.02, for everything the agent does beside a job); the detail has every kind's CPU seconds,
the bare launcher's, and per MB of output.

    .venv/bin/python bench/logpath.py [--json] [--quick] [--rounds N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from _common import Result, arguments, emit, progress, workspace

from jobrunner.api import LaunchPlan, ProcessPlan
from jobrunner.node.batchai_runtime import BatchAiLogFiles, StreamIndex
from jobrunner.node.launch import LogSink, run_plan
from jobrunner.node.logship import LogShipper

GOAL_CPU_PER_S = 0.02
LINE = "step {i:07d} loss 0.123456 lr 0.000100 throughput 1234.5 samples/s"
JOB = f"""\
import sys, time
kind, n = sys.argv[1], int(sys.argv[2])
out = [sys.stderr] if kind == "stderr" else [sys.stdout, sys.stderr] if kind == "both" else [sys.stdout]
for i in range(n):
    print({LINE!r}.format(i=i), file=out[i % len(out)])
    if kind == "steady":
        time.sleep(0.002)
"""
KINDS = {"stdout": 200_000, "stderr": 200_000, "both": 200_000, "steady": 2000}


def run(folder: Path, kind: str, lines: int, sink: LogSink) -> float:
    """Seconds the job ran; ValueError when it failed."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"}
    argv = (sys.executable, str(folder / "job.py"), kind, str(lines))
    plan = LaunchPlan("n0", "none", (ProcessPlan(argv, env, str(folder), "node-0"),))
    started = time.monotonic()
    result = run_plan(plan, sink)
    if not result.succeeded:
        raise ValueError(f"the {kind} job failed: {result.processes}")
    return time.monotonic() - started


def agent_side(ws, root: Path, kind: str, lines: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(CPU seconds, job seconds) of the attempt's log path around one job."""
    prefix = f"runs/bench/{kind}/{root.name}/logs/1/"
    shipper = LogShipper(ws.store(), prefix, root / "spool")
    index = StreamIndex(shipper, root / "spool", prefix)
    files = BatchAiLogFiles(root / "logs")

    def sink(log_name: str, stream: str, data: bytes) -> None:  # as `jobrunner.node.attempt` wires it
        index(log_name, stream, data)
        shipper.write_chunk(log_name, data)
        files(log_name, stream, data)

    cpu = time.process_time()
    shipper.start()
    with files:
        seconds = run(root.parent, kind, lines, sink)
    if not shipper.close():
        raise RuntimeError(f"the {kind} job's logs did not all reach the store")
    return time.process_time() - cpu, seconds


def bare(folder: Path, kind: str, lines: int) -> float:
    """CPU seconds of the launcher alone around the same job, its output dropped."""

    def drop(log_name: str, stream: str, data: bytes) -> None:
        pass

    cpu = time.process_time()
    run(folder, kind, lines, drop)
    return time.process_time() - cpu


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3)")

    args = arguments(__doc__.splitlines()[0], extra)
    rounds = args.rounds or (1 if args.quick else 3)
    kinds = {k: (n // 100 if args.quick else n) for k, n in KINDS.items()}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    base: dict[str, list[float]] = {k: [] for k in kinds}
    job_s: dict[str, list[float]] = {k: [] for k in kinds}
    with workspace() as ws:
        folder = ws.folder("jobs")
        (folder / "job.py").write_text(JOB)
        for r in range(rounds):
            for kind, lines in kinds.items():
                spent, seconds = agent_side(ws, ws.folder(f"jobs/{kind}-{r}"), kind, lines)
                cpu[kind].append(round(spent, 4))
                job_s[kind].append(round(seconds, 3))
                base[kind].append(round(bare(folder, kind, lines), 4))
                progress(f"round {r + 1} {kind}: agent {spent:.4f} CPU s, bare launcher {base[kind][-1]:.4f}")
    mb = {k: sum(len(LINE.format(i=i)) + 1 for i in range(n)) / 1e6 for k, n in kinds.items()}
    median = {k: statistics.median(v) for k, v in cpu.items()}
    per_s = median["steady"] / statistics.median(job_s["steady"])
    emit(
        Result(
            name="logpath",
            value=round(per_s, 5),
            baseline=round(statistics.median(base["steady"]) / statistics.median(job_s["steady"]), 5),
            unit="CPU s per s of a job logging a line every 2 ms",
            goal=f"the agent's log path under {GOAL_CPU_PER_S} CPU s per second of the job",
            met=per_s < GOAL_CPU_PER_S,
            detail={
                "agent_cpu_s": cpu,
                "bare_launcher_cpu_s": base,
                "job_s": job_s,
                "agent_cpu_s_per_mb": {k: round(median[k] / mb[k], 5) for k in kinds},
                "lines": kinds,
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
