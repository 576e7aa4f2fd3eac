"""agent: what an idle agent costs: memory, CPU and store requests (the Azure bill of an idle pool).

One `jobrunner agent` with the defaults a pool node runs with (no local-pool shortcuts)
serves an empty queue through a proxy that counts every store request. After a warm-up, it
is watched for `--seconds` (60): resident memory (peak of samples each second), CPU seconds
used (from /proc) and requests by kind. The baseline is a Python process that imports the
agent's modules and sleeps: the floor that the interpreter and the SDKs set.

    .venv/bin/python bench/agent.py [--json] [--quick] [--seconds N]

Goal: under 100 MB and under 1 % of a core; store requests per minute reported.
"""

from __future__ import annotations

import subprocess
import time

from _common import PYTHON, Result, arguments, cpu_seconds, emit, progress, rss_mib, workspace

GOAL_RSS_MB = 100.0
GOAL_CPU = 0.01
WARMUP_S = 10.0
FLOOR = "import jobrunner.agent, jobrunner.cli, time; time.sleep(3600)"


def watch(pid: int, seconds: float) -> tuple[float, float]:
    """(peak RSS MiB, share of one core) of a live process over `seconds`."""
    cpu0, t0, peak = cpu_seconds(pid), time.monotonic(), rss_mib(pid)
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        peak = max(peak, rss_mib(pid))
    return peak, (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--seconds", type=float, default=None, help="how long to watch (default 60)")

    args = arguments(__doc__.splitlines()[0], extra)
    seconds = args.seconds or (3.0 if args.quick else 60.0)
    warmup = 2.0 if args.quick else WARMUP_S
    with workspace(count_requests=True) as ws:
        assert ws.proxy is not None
        argv = [PYTHON, "-m", "jobrunner", "agent", "--pool", "idle", "--name", "idle-0",
                "--work-dir", str(ws.folder("agent"))]  # fmt: skip
        agent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        floor = subprocess.Popen([PYTHON, "-c", FLOOR])
        try:
            time.sleep(warmup)
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent.returncode}")
            before, counts_before = ws.proxy.total(), ws.proxy.counts()
            progress(f"watching the idle agent for {seconds:.0f} s")
            peak, cpu = watch(agent.pid, seconds)
            requests = ws.proxy.total() - before
            by_kind = {k: v - counts_before.get(k, 0) for k, v in ws.proxy.counts().items()}
            floor_rss = rss_mib(floor.pid)
        finally:
            for proc in (agent, floor):
                proc.terminate()
                proc.wait(30)
    per_minute = requests * 60 / seconds
    emit(
        Result(
            name="agent",
            value=round(peak, 1),
            baseline=round(floor_rss, 1),
            unit="MiB RSS",
            goal=f"idle agent under {GOAL_RSS_MB:.0f} MB and under {GOAL_CPU:.0%} of a core",
            met=peak * 1.048576 < GOAL_RSS_MB and cpu < GOAL_CPU,
            detail={
                "seconds": seconds,
                "rss_mib": round(peak, 1),
                "floor_rss_mib": round(floor_rss, 1),
                "cpu_share_of_core": round(cpu, 5),
                "store_requests_per_min": round(per_minute, 1),
                "store_requests_by_kind": {k: v for k, v in sorted(by_kind.items()) if v},
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
