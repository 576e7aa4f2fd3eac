"""agent: what an idle agent costs: memory, CPU and store requests (the Azure bill of an idle pool).

One `jobrunner agent` with the defaults a pool node runs with (no local-pool shortcuts)
serves an empty queue through a proxy that counts every store request, while the benchmark
itself holds the pool's scheduler lease (outside the proxy): the agent is one node among
many, which is what nearly every agent of a pool is. After a warm-up, it is watched for
`--seconds` (60): resident memory (peak of samples each second), CPU seconds used (from
/proc) and requests by kind. Then the same for an agent that leads an empty pool of its own
(`detail.leader_requests_per_min`: the one agent per pool that also schedules). The baseline
is a Python process that imports the agent's modules and sleeps: the floor that the
interpreter and the SDKs set.

    .venv/bin/python bench/agent.py [--json] [--quick] [--seconds N]

Goal: under 100 MB, under 1 % of a core and at most 6 store requests a minute for an idle node.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator

from _common import PYTHON, Result, Workspace, arguments, cpu_seconds, emit, progress, rss_mib, workspace

from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.scheduler.protocol import LEADER_BLOB
from jobrunner.store.client import Store

GOAL_RSS_MB = 100.0
GOAL_CPU = 0.01
GOAL_REQUESTS_PER_MIN = 6.0
WARMUP_S = 10.0
FLOOR = "import jobrunner.node.agent, jobrunner.cli.main, time; time.sleep(3600)"


def watch(pid: int, seconds: float) -> tuple[float, float]:
    """(peak RSS MiB, share of one core) of a live process over `seconds`."""
    cpu0, t0, peak = cpu_seconds(pid), time.monotonic(), rss_mib(pid)
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        peak = max(peak, rss_mib(pid))
    return peak, (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


@contextlib.contextmanager
def lease_held(store: Store, pool: str) -> Iterator[None]:
    """The pool's scheduler lease, held by the benchmark (renewed on a thread) while the block runs."""
    sched = AzurePoolStore(store, pool)
    if not sched.acquire_lease(LEADER_BLOB, 60, "bench-holder"):
        raise RuntimeError("could not take the pool's lease")
    done = threading.Event()

    def renew() -> None:
        while not done.wait(15):
            sched.renew_lease(LEADER_BLOB, "bench-holder")

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def measure(
    ws: Workspace, pool: str, seconds: float, warmup: float
) -> tuple[float, float, int, dict[str, int]]:
    """(peak RSS MiB, CPU share, requests, requests by kind) of one idle agent of `pool`."""
    assert ws.proxy is not None
    argv = [PYTHON, "-m", "jobrunner", "agent", "--pool", pool, "--name", f"{pool}-0",
            "--work-dir", str(ws.folder(f"agent-{pool}"))]  # fmt: skip
    env = {**os.environ, "JOBRUNNER_STORE": ws.connection}
    agent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        time.sleep(warmup)
        if agent.poll() is not None:
            raise RuntimeError(f"the agent exited with {agent.returncode}")
        before, counts_before = ws.proxy.total(), ws.proxy.counts()
        progress(f"watching the idle agent of pool {pool} for {seconds:.0f} s")
        peak, cpu = watch(agent.pid, seconds)
        requests = ws.proxy.total() - before
        by_kind = {k: v - counts_before.get(k, 0) for k, v in ws.proxy.counts().items()}
    finally:
        agent.terminate()
        agent.wait(30)
    return peak, cpu, requests, {k: v for k, v in sorted(by_kind.items()) if v}


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--seconds", type=float, default=None, help="how long to watch (default 60)")

    args = arguments(__doc__.splitlines()[0], extra)
    seconds = args.seconds or (3.0 if args.quick else 60.0)
    warmup = 2.0 if args.quick else WARMUP_S
    with workspace(count_requests=True) as ws:
        floor = subprocess.Popen([PYTHON, "-c", FLOOR])
        try:
            with lease_held(Store.connect(ws.azurite_connection), "idle"):
                peak, cpu, requests, by_kind = measure(ws, "idle", seconds, warmup)
            _, _, leader_requests, leader_by_kind = measure(ws, "lead", seconds, warmup)
            floor_rss = rss_mib(floor.pid)
        finally:
            floor.terminate()
            floor.wait(30)
    per_minute = requests * 60 / seconds
    emit(
        Result(
            name="agent",
            value=round(peak, 1),
            baseline=round(floor_rss, 1),
            unit="MiB RSS",
            goal=f"idle agent under {GOAL_RSS_MB:.0f} MB, under {GOAL_CPU:.0%} of a core, "
            f"at most {GOAL_REQUESTS_PER_MIN:.0f} store requests a minute",
            met=peak * 1.048576 < GOAL_RSS_MB and cpu < GOAL_CPU and per_minute <= GOAL_REQUESTS_PER_MIN,
            detail={
                "seconds": seconds,
                "rss_mib": round(peak, 1),
                "floor_rss_mib": round(floor_rss, 1),
                "cpu_share_of_core": round(cpu, 5),
                "store_requests_per_min": round(per_minute, 1),
                "store_requests_by_kind": by_kind,
                "leader_requests_per_min": round(leader_requests * 60 / seconds, 1),
                "leader_requests_by_kind": leader_by_kind,
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
