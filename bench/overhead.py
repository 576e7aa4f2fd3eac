"""overhead: the same 2-process DDP training under plain torchrun and on a 2-node local pool.

The training is `examples/ddp/train.py` with a fixed number of steps (gloo on CPU, one line
of output per step and rank). Its own timing of the training loop (`seconds` in
metrics.json) is the training phase; the ratio is pool / torchrun. End to end: from the
`torchrun` call, or from `Client.submit`, to the outputs being available (for the pool:
the run reported finished, after its outputs were uploaded). A third side, in the detail
only: the pool's own topology (two `torchrun --nnodes 2`, one worker each) started by hand,
which separates what torchrun's multi-node mode costs from what the agents add.

    .venv/bin/python bench/overhead.py [--json] [--quick] [--steps N] [--rounds N]

Goal: training-phase ratio at most 1.03; end-to-end added seconds reported; the agents' CPU
seconds per second of training (`detail.agent_cpu_per_s`) under 0.02.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import (
    PYTHON,
    REPO,
    Result,
    agents_cpu_s,
    arguments,
    emit,
    local_pool,
    progress,
    timed_command,
    wait_until_done,
    workspace,
)

from jobrunner.local.azurite import free_port

GOAL_RATIO = 1.03
IDLE_S = 20.0  # the idle pool watched before the rounds
SETTLE_S = 15.0  # after the agents said they are idle, before that
BY_HAND_TIMEOUT_S = 120.0  # two torchruns by hand, beyond a fiftieth of a second per step
EXAMPLE = REPO / "examples" / "ddp"


def plain_torchrun(steps: int) -> tuple[float, float]:
    """(training seconds, end-to-end seconds) of `torchrun --standalone --nproc-per-node 2`."""
    with tempfile.TemporaryDirectory() as out:
        argv = [
            PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            str(EXAMPLE / "train.py"), "--steps", str(steps), "--out", out,
        ]  # fmt: skip
        wall, _ = timed_command(argv, cwd=EXAMPLE)
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    return float(metrics["seconds"]), wall


def two_torchruns(steps: int) -> float:
    """Training seconds of the pool's topology started by hand: two `torchrun --nnodes 2`
    (one worker each, c10d rendezvous on loopback), as the agents start them, without agents."""
    port = free_port()
    with tempfile.TemporaryDirectory() as out:
        logs = [Path(out) / f"node-{rank}.log" for rank in (0, 1)]
        procs = []
        for rank, log in enumerate(logs):
            argv = [
                PYTHON, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                f"--node-rank={rank}", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
                "--rdzv-id=bench", f"--rdzv-conf=is_host={'true' if rank == 0 else 'false'}",
                "--max-restarts=0", str(EXAMPLE / "train.py"), "--steps", str(steps), "--out", out,
            ]  # fmt: skip
            # to files: a pipe read after the other node's would fill and stall the collective
            with open(log, "wb") as f:
                procs.append(subprocess.Popen(argv, cwd=EXAMPLE, stdout=f, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + BY_HAND_TIMEOUT_S + steps / 50
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        hung = [rank for rank, p in enumerate(procs) if p.poll() is None]
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if hung or any(p.returncode for p in procs):
            # a node that fails leaves the other waiting in torchrun's exit barrier (300 s)
            said = "; ".join(
                f"node {rank} {'did not end' if rank in hung else f'exited {p.returncode}'}: "
                f"{log.read_text(errors='replace')[-1500:]}"
                for rank, (p, log) in enumerate(zip(procs, logs, strict=True))
            )
            raise RuntimeError(f"two torchruns failed: {said}")
        return float(json.loads((Path(out) / "metrics.json").read_text())["seconds"])


def on_pool(client, steps: int, download_to: Path) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(training seconds, end-to-end seconds, agents' CPU seconds) of examples/ddp/job.yml on
    the 2-node pool."""
    cpu = agents_cpu_s()
    started = time.perf_counter()
    run = client.submit(EXAMPLE / "job.yml", overrides={"inputs.steps": str(steps)})
    status = wait_until_done(client, run.id, timeout_s=900, poll_s=0.1)
    wall = time.perf_counter() - started
    cpu = agents_cpu_s() - cpu
    if status.state.value != "succeeded":
        raise RuntimeError(f"{run.id} ended {status.state.value}: {status.reason}")
    client.download_outputs(run.id, download_to / run.id)
    metrics = json.loads(next((download_to / run.id).rglob("metrics.json")).read_text())
    return float(metrics["seconds"]), wall, cpu


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--steps", type=int, default=None, help="training steps (default 5000)")
        parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3)")

    args = arguments(__doc__.splitlines()[0], extra)
    steps = args.steps or (20 if args.quick else 5000)
    rounds = args.rounds or (1 if args.quick else 3)
    plain: list[tuple[float, float]] = []
    pool: list[tuple[float, float]] = []
    agent_cpu: list[float] = []
    by_hand: list[float] = []
    with workspace() as ws, local_pool(2):
        client = ws.client()
        # what the two agents use with nothing to run (the pool's own protocol: beats, the
        # leader's passes), so that a run's CPU can be split into that and the run's own work
        idle_s = 2.0 if args.quick else IDLE_S
        # once the agents have settled: each imports MLflow's client on a thread as it starts
        time.sleep(1.0 if args.quick else SETTLE_S)
        before = agents_cpu_s()
        time.sleep(idle_s)
        idle_per_s = (agents_cpu_s() - before) / idle_s
        progress(f"idle pool: the agents used {idle_per_s:.4f} CPU s per s")
        for i in range(rounds):
            # alternate, so that a slow spell of the machine hits both sides alike
            plain.append(plain_torchrun(steps))
            progress(
                f"round {i + 1}: torchrun training {plain[-1][0]:.2f} s, end to end {plain[-1][1]:.2f} s"
            )
            by_hand.append(two_torchruns(steps))
            progress(f"round {i + 1}: two torchruns by hand: training {by_hand[-1]:.2f} s")
            *timings, cpu = on_pool(client, steps, ws.folder("outputs"))
            pool.append((timings[0], timings[1]))
            agent_cpu.append(round(cpu, 2))
            progress(f"round {i + 1}: pool training {pool[-1][0]:.2f} s, end to end {pool[-1][1]:.2f} s")
    train_plain = statistics.median(t for t, _ in plain)
    train_pool = statistics.median(t for t, _ in pool)
    wall_plain = statistics.median(w for _, w in plain)
    wall_pool = statistics.median(w for _, w in pool)
    ratio = train_pool / train_plain
    emit(
        Result(
            name="overhead",
            value=round(train_pool, 3),
            baseline=round(train_plain, 3),
            unit="s",
            goal=f"training-phase time on the pool at most {GOAL_RATIO}x plain torchrun",
            met=ratio <= GOAL_RATIO,
            detail={
                "steps": steps,
                "rounds": rounds,
                "training_s": {
                    "torchrun": [round(t, 3) for t, _ in plain],
                    "pool": [round(t, 3) for t, _ in pool],
                },
                "end_to_end_s": {
                    "torchrun": [round(w, 3) for _, w in plain],
                    "pool": [round(w, 3) for _, w in pool],
                },
                "end_to_end_added_s": round(wall_pool - wall_plain, 3),
                # the pool's own topology (2 nodes x 1 worker) without agents: what torchrun's
                # multi-node mode costs, apart from what the job runner adds
                "two_torchruns_by_hand_training_s": [round(t, 3) for t in by_hand],
                "pool_vs_by_hand_ratio": round(train_pool / statistics.median(by_hand), 4),
                # what the two agents themselves used while their job ran (pumping its output,
                # shipping logs, heartbeats): on a 2-core machine it comes out of the training
                "agents_cpu_s": agent_cpu,
                # the same per second of training (the goal: under 0.02, a fiftieth of a core)
                "agent_cpu_per_s": round(sum(agent_cpu) / sum(t for t, _ in pool), 4),
                # the idle pool's rate, and what the runs cost beyond it over their end-to-end
                # time, per second of training: the node's work for its job
                "idle_agents_cpu_per_s": round(idle_per_s, 4),
                "agent_cpu_per_s_beyond_idle": round(
                    (sum(agent_cpu) - idle_per_s * sum(w for _, w in pool)) / sum(t for t, _ in pool), 4
                ),
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
