"""metrics: what logging metrics with MLflow costs a training loop.

Two ranks (two processes, started together as a pool starts a job's ranks) each run a loop of
steps of 1 ms of computing (the thread's CPU time), 1,000 steps per second, and log one metric
per step, so what a call costs adds to its step: 1,000 metrics per second from each rank, into
one MLflow run on a real local tracking server (`mlflow server`, SQLite), with the variables a
pool sets (`jobrunner.tracking.runs`: the run's MLFLOW_TRACKING_URI and MLFLOW_RUN_ID, MLflow's
asynchronous logging with 1 s buffering, the registry URI and telemetry off:
`tracking_defaults`), the calls plain `mlflow.log_metric(name, value, step=step)`, through the
REST store the pool's environment registers with MLflow (`jobrunner.tracking.store`). The
baseline is the same loop not logging, in the same run. The last flush of the queue at
the end (`mlflow.flush_async_logging()`, at most the buffering second and one request) is a
fixed cost once per run, timed apart (`flush_s`). The value is the CPU time of the costlier
rank (every thread of it: the loop's calls and MLflow's sending thread), the best of the
rounds, the two sides alternating; the loops' wall-clock times are in the detail (on a shared
machine they measure its load more than the logging).

    .venv/bin/python bench/metrics.py [--json] [--quick] [--steps N] [--rounds N]

Goal: the logging loop at most 5 % costlier than the same loop not logging (ratio <= 1.05). The
run is read back at the end: every point of both ranks must be there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from _common import PYTHON, Result, arguments, emit, progress

from jobrunner.local.tracking_server import start_tracking_server
from jobrunner.tracking.runs import TrackingRecord, tracking_defaults, tracking_env

GOAL = 1.05
STEP_S = 0.001
RANKS = 2
SCRIPT = """\
import json, os, sys, time
steps, step_s, log, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
if log:
    import mlflow
    mlflow.start_run()
rank = int(os.environ["RANK"])
name = f"rank_{rank}/loss"
cpu_started, started = time.process_time(), time.perf_counter()
for step in range(steps):
    # the step's work: 1 ms of this thread's CPU, whatever the machine's load (a wall-clock
    # spin on a shared machine measures how often the process is scheduled, not the work)
    end = time.thread_time() + step_s
    while time.thread_time() < end:
        pass
    if log:
        mlflow.log_metric(name, 1.0 / (step + 1), step=step)
# every thread of the rank: the loop's calls and the sender's batches both cost the training
cpu, elapsed = time.process_time() - cpu_started, time.perf_counter() - started
if log:
    mlflow.flush_async_logging()
flush = time.perf_counter() - started - elapsed
open(out, "w").write(json.dumps({"elapsed": elapsed, "cpu": cpu, "flush": flush}))
"""


def one_round(folder: Path, env: dict[str, str], steps: int, log: bool) -> tuple[float, float, float]:
    """Both ranks at once; returns the costlier one's CPU seconds, the slower one's loop time
    and the longest final flush."""
    script = folder / "loop.py"
    procs, outs = [], []
    for rank in range(RANKS):
        out = folder / f"rank-{rank}.json"
        outs.append(out)
        argv = [PYTHON, str(script), str(steps), str(STEP_S), "1" if log else "0", str(out)]
        # stdout stays the result: MLflow prints the run's address when a rank ends its run
        procs.append(subprocess.Popen(argv, env={**env, "RANK": str(rank)}, stdout=subprocess.DEVNULL))
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise SystemExit(f"a rank exited with {proc.returncode}")
    times = [json.loads(out.read_text()) for out in outs]
    return max(t["cpu"] for t in times), max(t["elapsed"] for t in times), max(t["flush"] for t in times)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)


def main() -> None:
    args = arguments(
        __doc__.splitlines()[0],
        _options,
    )
    steps, rounds = (200, 1) if args.quick else (args.steps, args.rounds)
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        folder = Path(tmp)
        (folder / "loop.py").write_text(SCRIPT)
        progress("starting the MLflow tracking server")
        server = start_tracking_server(folder / "mlflow")
        try:
            client = MlflowClient(tracking_uri=server.uri)
            experiment = client.create_experiment("bench-metrics")
            logged, plain, flushes, run_ids = [], [], [], []
            logged_wall, plain_wall = [], []
            for i in range(rounds):
                run = client.create_run(experiment, run_name=f"round-{i}")
                run_ids.append(run.info.run_id)
                record = TrackingRecord(
                    uri=server.uri,
                    run_id=run.info.run_id,
                    experiment_id=experiment,
                    experiment="bench-metrics",
                )
                # what a pool's job gets
                env = {**os.environ, **tracking_defaults(record), **tracking_env(record)}
                progress(f"round {i + 1}/{rounds}: {RANKS} ranks x {steps} steps, logging and not")
                cpu_s, loop_s, flush_s = one_round(folder, env, steps, log=True)
                logged.append(cpu_s)
                logged_wall.append(loop_s)
                flushes.append(flush_s)
                cpu_s, loop_s, _ = one_round(folder, env, steps, log=False)
                plain.append(cpu_s)
                plain_wall.append(loop_s)
            points = {
                name: len(client.get_metric_history(run_ids[-1], name))
                for name in (f"rank_{r}/loss" for r in range(RANKS))
            }
        finally:
            server.stop()
    value, base = min(logged), min(plain)
    emit(
        Result(
            name="metrics",
            value=round(value, 4),
            baseline=round(base, 4),
            unit="CPU s",
            goal=f"{RANKS} ranks logging 1,000 metrics/s each: at most {GOAL - 1:.0%} more CPU than without",
            met=value / base <= GOAL and all(n == steps for n in points.values()),
            detail={
                "ranks": RANKS,
                "steps_per_rank": steps,
                "logging_cpu_s": [round(x, 3) for x in logged],
                "not_logging_cpu_s": [round(x, 3) for x in plain],
                "per_call_us": round((value - base) / steps * 1e6, 1),
                "logging_wall_s": [round(x, 3) for x in logged_wall],
                "not_logging_wall_s": [round(x, 3) for x in plain_wall],
                "flush_s": [round(x, 3) for x in flushes],
                "logging_env": {
                    k: v for k, v in tracking_defaults(record).items() if k != "MLFLOW_REGISTRY_URI"
                },
                "points_read_back": points,
                "every_point_kept": all(n == steps for n in points.values()),
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
