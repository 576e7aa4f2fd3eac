"""simulate: the pool protocol and scheduler at 1,000 agents, in a deterministic simulation.

The real leader, node and decision code (`jobrunner.scheduler`) runs over a simulated store
and clocks (`jobrunner.scheduler.simulation`): every fault is drawn from the seed and a
failing seed replays exactly (`--seed-base N --seeds 1`).

    .venv/bin/python bench/simulate.py [--json] [--quick] [--agents 1000] [--jobs 10000]
        [--seeds 200] [--fault-agents 24] [--fault-jobs 80] [--processes 2]

Three parts, one result:

1. Fault-free at `--agents` agents and `--jobs` jobs: the makespan against its lower bound
   (total node-seconds over the nodes, or the longest job, whichever is larger: `value`,
   `baseline` and `ratio`), store requests per job, and the wall time of each leader pass
   (`pass_p99_s`, CPU seconds of this process, so that a loaded machine does not inflate it;
   the pass reads the listings, decides and writes its assignments).
2. The same workload scaled to 100 agents (jobs scaled alike): requests per job again.
3. `--seeds` seeds with faults (agent crashes and restarts, lost answers, ETag races,
   outages, lease breaks, clock skew) at `--fault-agents`: lost, doubled and stranded runs,
   summed over the seeds.

Goals: lost = doubled = stranded = 0 over at least 200 seeds; makespan at most 1.15x its
lower bound; at most 20 requests per job at both sizes; a pass p99 under 50 ms.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from _common import Result, arguments, emit, percentile, progress

from jobrunner.scheduler.simulation import Faults, SimConfig, SimResult, simulate

GOAL_RATIO = 1.15
GOAL_REQUESTS = 20.0
GOAL_PASS_S = 0.05


def _faulty(args: tuple[int, int, int]) -> SimResult:
    agents, jobs, seed = args
    return simulate(SimConfig(agents, jobs, seed, Faults.drawn()))


def main() -> None:
    def extra(parser: object) -> None:
        add = parser.add_argument  # type: ignore[attr-defined]
        add("--agents", type=int, default=1000)
        add("--jobs", type=int, default=10_000)
        add("--seeds", type=int, default=200)
        add("--seed-base", type=int, default=0)
        add("--fault-agents", type=int, default=24)
        add("--fault-jobs", type=int, default=80)
        add("--processes", type=int, default=2)

    args = arguments(__doc__.splitlines()[0], extra)
    if args.quick:
        args.agents, args.jobs, args.seeds, args.fault_agents, args.fault_jobs = 30, 90, 3, 10, 20
    seeds = range(args.seed_base, args.seed_base + args.seeds)
    progress(f"{args.seeds} fault seeds ({args.fault_agents} agents, {args.fault_jobs} jobs each) meanwhile")
    with ProcessPoolExecutor(max_workers=max(1, args.processes)) as pool:
        futures = [pool.submit(_faulty, (args.fault_agents, args.fault_jobs, s)) for s in seeds]
        progress(f"fault-free: {args.agents} agents, {args.jobs} jobs")
        big = simulate(SimConfig(args.agents, args.jobs, args.seed_base))
        small_agents = min(100, args.agents)
        small_jobs = max(1, args.jobs * small_agents // args.agents)
        progress(f"fault-free: {small_agents} agents, {small_jobs} jobs")
        small = simulate(SimConfig(small_agents, small_jobs, args.seed_base))
        faulty = [f.result() for f in futures]
    bad = [r.seed for r in faulty if r.lost or r.doubled or r.stranded]
    lost, doubled, stranded = (sum(getattr(r, k) for r in faulty) for k in ("lost", "doubled", "stranded"))
    pass_p99 = percentile(big.pass_s, 99) if big.pass_s else 0.0
    ratio = big.makespan_s / big.lower_bound_s
    met = (
        lost == doubled == stranded == 0
        and args.seeds >= 200
        and ratio <= GOAL_RATIO
        and big.requests_per_job <= GOAL_REQUESTS
        and small.requests_per_job <= GOAL_REQUESTS
        and pass_p99 < GOAL_PASS_S
    )
    detail = {
        "agents": args.agents,
        "jobs": args.jobs,
        "seeds": args.seeds,
        "fault_agents": args.fault_agents,
        "fault_jobs": args.fault_jobs,
        "lost": lost,
        "doubled": doubled,
        "stranded": stranded,
        "failing_seeds": bad[:20],
        "failed_past_requeue_cap": sum(r.failed_past_cap for r in faulty),
        "requests_per_job": round(big.requests_per_job, 2),
        "requests_per_job_100_agents": round(small.requests_per_job, 2),
        "requests_by_kind_per_job": big.requests_by_kind_per_job,
        "pass_p99_s": round(pass_p99, 4),
        "pass_p50_s": round(percentile(big.pass_s, 50), 4) if big.pass_s else 0.0,
        "passes": len(big.pass_s),
        "makespan_ratio_100_agents": round(small.makespan_s / small.lower_bound_s, 4),
        "faulty_makespan_ratio_p50": round(
            percentile([r.makespan_s / r.lower_bound_s for r in faulty], 50), 4
        ),
    }
    goal = (
        f"lost = doubled = stranded = 0 over >= 200 fault seeds; makespan <= {GOAL_RATIO}x its lower bound; "
        f"<= {GOAL_REQUESTS:g} requests per job at 100 and {args.agents} agents; "
        f"pass p99 < {GOAL_PASS_S * 1000:g} ms"
    )
    emit(Result("simulate", big.makespan_s, big.lower_bound_s, "s", goal, met, detail), args.json)


if __name__ == "__main__":
    main()
