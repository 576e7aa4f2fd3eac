"""scale: many local agents and many gang jobs submitted at once.

`--agents` (32) agents of one local pool, and `--jobs` (300) jobs of 1 to 4 instances
(sizes 1, 2, 3, 4 in turn, shuffled with a fixed seed), all submitted at once from 8
threads. Each job's command sleeps `--sleep` seconds and appends `run node-rank attempt` to
a ledger file: every job must appear there exactly once per node rank, in attempt 1, and
every run must end `succeeded` (none starves, no gang deadlocks). The baseline is the ideal
packing of the same work on the same agents: node-seconds / agents. Dispatch is submit to
the run's RUNNING transition. Store requests are counted on the wire from the first submit
until every run ended (the submissions included; the benchmark's own status reads bypass
the counter).

    .venv/bin/python bench/scale.py [--json] [--quick] [--agents N] [--jobs N] [--sleep S]

Goal: every job exactly once, none starved or deadlocked; makespan within 2x the ideal
packing; at most 30 store requests per job (`detail.store_requests_per_job`), p95 dispatch
reported.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from _common import Result, arguments, emit, local_pool, percentile, progress, workspace, write_job

from jobrunner.client import Client
from jobrunner.spec.job import load_job
from jobrunner.store.client import Store

POOL = "scale"
SUBMIT_THREADS = 8


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> None:
    def extra(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--agents", type=int, default=None, help="local agents (default 32)")
        parser.add_argument("--jobs", type=int, default=None, help="jobs (default 300)")
        parser.add_argument("--sleep", type=float, default=None, help="each job's seconds (default 1)")
        parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")

    args = arguments(__doc__.splitlines()[0], extra)
    agents = args.agents or (3 if args.quick else 32)
    jobs = args.jobs or (6 if args.quick else 300)
    sleep = args.sleep if args.sleep is not None else (0.2 if args.quick else 1.0)
    sizes = [1 + i % min(4, agents) for i in range(jobs)]
    random.Random(8).shuffle(sizes)
    with workspace(count_requests=True) as ws, local_pool(agents, POOL):
        assert ws.proxy is not None
        client = ws.client(POOL)
        ledger = ws.root / "ledger.txt"
        ledger.touch()
        specs = {}
        for size in set(sizes):
            path = write_job(
                ws.folder("jobs"), f"job-{size}.yml",
                f"command: sleep {sleep} && echo \"$AZUREML_RUN_ID $NODE_RANK $TRAINSTACK_ATTEMPT\""
                f" >> {ledger}\n"
                f"resources:\n  instance_count: {size}\n",
            )  # fmt: skip
            specs[size] = load_job(path)
        requests_before = ws.proxy.total()
        progress(f"submitting {jobs} jobs to {agents} agents")
        started = time.time()

        def submit(size: int) -> tuple[str, int, float]:
            at = time.time()
            return client.submit_spec(specs[size], pool=POOL).id, size, at

        with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
            submitted = list(pool.map(submit, sizes))
        progress(f"submitted in {time.time() - started:.1f} s")
        expected = sum(sizes)
        deadline = time.monotonic() + args.timeout
        lines = 0
        while time.monotonic() < deadline:
            lines = len(ledger.read_text().splitlines())
            if lines >= expected:
                break
            time.sleep(1.0)
            progress(f"{lines}/{expected} node runs done")
        statuses = {}
        # the benchmark's own reads go to Azurite itself: what it observes is not the pool's cost
        observer = Client(Store.connect(ws.azurite_connection), pool=POOL)
        for run_id, _, _ in submitted:  # the last reports land just after the ledger line
            for _ in range(100):
                statuses[run_id] = observer.status(run_id)
                if statuses[run_id].state.terminal:
                    break
                time.sleep(0.1)
        requests = ws.proxy.total() - requests_before
        kinds = ws.proxy.kinds()
        entries = Counter(tuple(line.split()) for line in ledger.read_text().splitlines())
    states = Counter(s.state.value for s in statuses.values())
    once = all(
        all(entries.get((run_id, str(rank), "1"), 0) == 1 for rank in range(size))
        and sum(n for (rid, _, _), n in entries.items() if rid == run_id) == size
        for run_id, size, _ in submitted
    )
    finished = [s for s in statuses.values() if s.finished_at]
    makespan = max(_ts(s.finished_at or "") for s in finished) - started if finished else float("inf")
    dispatch = [_ts(s.started_at) - at for (run_id, _, at) in submitted if (s := statuses[run_id]).started_at]
    ideal = sum(sizes) * sleep / agents
    emit(
        Result(
            name="scale",
            value=round(makespan, 2),
            baseline=round(ideal, 2),
            unit="s makespan",
            goal="every job exactly once, none starved; makespan <= 2x ideal packing; <= 30 requests per job",
            met=(
                once
                and states.get("succeeded", 0) == jobs
                and makespan <= 2 * ideal
                and requests / jobs <= 30
            ),
            detail={
                "agents": agents,
                "jobs": jobs,
                "node_runs": expected,
                "job_sizes": dict(sorted(Counter(sizes).items())),
                "sleep_s": sleep,
                "states": dict(states),
                "every_job_exactly_once": once,
                "node_runs_in_later_attempts": sum(n for (_, _, a), n in entries.items() if a != "1"),
                "dispatch_p50_s": round(percentile(dispatch, 50), 2) if dispatch else None,
                "dispatch_p95_s": round(percentile(dispatch, 95), 2) if dispatch else None,
                "not_succeeded": {
                    i: f"{s.state.value}: {s.reason}"
                    for i, s in statuses.items()
                    if s.state.value != "succeeded"
                },
                "missing_from_ledger": [
                    f"{run_id} rank {rank}"
                    for run_id, size, _ in submitted
                    for rank in range(size)
                    if not entries.get((run_id, str(rank), "1"))
                ],
                "store_requests": requests,
                "store_requests_per_job": round(requests / jobs, 1),
                # from the start (the agents' first minute and the submissions included)
                "store_requests_by_kind_per_job": {
                    k: round(n / jobs, 1) for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:16]
                },
            },
        ),
        args.json,
    )


if __name__ == "__main__":
    main()
