"""dispatch: submit-to-first-process latency on an idle local pool of one agent.

Each job's command writes the wall-clock time it started (`date +%s.%N`) to a file; the
latency is that time minus the moment `Client.submit` was called (upload of the spec, the
status document and the queue message included). The baseline is the same command started
directly (`bash -c`), timed the same way. Between jobs the pool is left idle for a settling
time plus a random part of the agent's beat cycle (seeded), so the submits land at random
phases of an idle agent's loop: a window in which the agent would not hear the doorbell
shows in p95.

    .venv/bin/python bench/dispatch.py [--json] [--quick]

Goal: p50 under 0.5 s (Azure ML takes minutes from queued to running).
"""

from __future__ import annotations

import random
import subprocess
import time

from _common import (
    Result,
    arguments,
    emit,
    local_pool,
    percentile,
    progress,
    wait_until_done,
    workspace,
    write_job,
)

GOAL_P50_S = 0.5
IDLE_SETTLE_S = 2.0  # the pool's first job and its leader's election are over by then
CYCLE_S = 1.0  # a local agent's beat (`jobrunner.local.pool.LOCAL_AGENT_ARGS`)
COMMAND = "date +%s.%N > {marker}"


def direct_latency(marker: str) -> float:
    """Seconds from calling `bash -c COMMAND` to the time the command wrote."""
    started = time.time()
    subprocess.run(["bash", "-c", COMMAND.format(marker=marker)], check=True)
    with open(marker) as f:
        return float(f.read()) - started


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    jobs = 3 if args.quick else 20
    settle = 0.5 if args.quick else IDLE_SETTLE_S
    with workspace() as ws, local_pool(1):
        client = ws.client()
        folder = ws.folder("jobs")
        markers = ws.folder("markers")
        baseline = [direct_latency(str(markers / f"direct-{i}")) for i in range(jobs)]
        latencies = []
        phases = random.Random(20).random
        for i in range(jobs):
            time.sleep(settle + CYCLE_S * phases())
            marker = markers / f"job-{i}"
            job = write_job(folder, f"job-{i}.yml", f"command: {COMMAND.format(marker=marker)}\n")
            submitted = time.time()
            run = client.submit(job)
            status = wait_until_done(client, run.id, timeout_s=120)
            if status.state.value != "succeeded":
                raise RuntimeError(f"{run.id} ended {status.state.value}: {status.reason}")
            latencies.append(float(marker.read_text()) - submitted)
            progress(f"job {i + 1}/{jobs}: {latencies[-1]:.3f} s")
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    base50 = percentile(baseline, 50)
    emit(
        Result(
            name="dispatch",
            value=round(p50, 4),
            baseline=round(base50, 4),
            unit="s",
            goal=f"p50 submit-to-first-process under {GOAL_P50_S} s on an idle 1-agent local pool",
            met=p50 < GOAL_P50_S,
            detail={
                "jobs": jobs,
                "p50_s": round(p50, 4),
                "p95_s": round(p95, 4),
                "max_s": round(max(latencies), 4),
                "baseline_p50_s": round(base50, 4),
                "baseline_p95_s": round(percentile(baseline, 95), 4),
                "latencies_s": [round(x, 4) for x in latencies],
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
