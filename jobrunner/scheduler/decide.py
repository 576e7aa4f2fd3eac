"""The scheduling decision: a pure function from the pool's state to the attempts to start now.

    decision = decide(PoolState(now=t, idle=("vm-0", "vm-1"), running=(...), queued=(...)))
    decision.assignments    # (Assignment(run_id, attempt, nodes=("vm-0", "vm-1")), ...)
    decision.reservation    # the gang that waits for nodes, and when it starts at the latest
    decision.waiting        # jobs that cannot start, with the reason a person reads

The rules (Slurm's EASY backfill, on whole nodes):

1. Order: higher `priority` first, then earlier `submitted_at` (the store's clock: when the
   submission reached the store, never the submitter's clock), then run id and attempt, so
   that equal timestamps still give one total order and every pass decides the same way.
2. A job's N nodes are assigned at once or not at all (gang placement), from the idle live
   nodes, taken in name order.
3. A job larger than the live pool (idle plus busy nodes) waits visibly ("waiting for 8
   nodes, the pool has 5") and reserves nothing: it cannot block the pool while it waits
   for capacity that may never come (Spot, quota); autoscale sees its demand in nodes.
4. The first job in order that fits the pool but not the idle nodes gets the reservation: the
   earliest time (its shadow time) at which enough nodes are free, counting each running
   job's nodes free at its latest end, `started_at + timeout_s`. A running job without a
   timeout, or already past it, may end any moment: its nodes count as free now. That makes
   the shadow time the earliest the gang could start, so what is decided below can never
   delay it.
5. Behind the reservation a job may start (backfill) only if it fits the idle nodes and
   either ends, at its own latest, by the shadow time, or uses only nodes that the gang
   will not need even then (the extra nodes). A job without a timeout never starts ahead
   of a reservation: nothing bounds how long it would hold its nodes.

6. Quotas: a job names the groups it counts against (its experiment, its user) with the most
   nodes each may hold at once (`trainstack.quota`). A job whose start would take one of its
   groups past that waits ("over quota: experiment mnist holds 6 of its 8 nodes") and
   reserves nothing: the jobs behind it go on, and it starts once its group's runs end. Its
   nodes count in its groups from the pass that assigns it.

Only one job holds a reservation (EASY, not conservative backfill): later gangs wait behind it
in order. Times are seconds on any one clock (the store's); nothing here reads a clock.

Failure modes: none; any state gives a decision. A node named both idle and running, or twice,
is the caller's bug and raises ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class QueuedJob:
    """An attempt that waits for nodes."""

    run_id: str
    attempt: int
    nodes: int
    submitted_at: float  # store time of the submission (or of the requeue)
    priority: int = 0  # higher first
    timeout_s: float | None = None  # limits.timeout: the latest it holds its nodes
    quota: tuple[tuple[str, int], ...] = ()  # (group, the most nodes it may hold), rule 6


@dataclass(frozen=True)
class RunningJob:
    """An attempt that holds nodes."""

    run_id: str
    nodes: tuple[str, ...]
    started_at: float
    timeout_s: float | None = None
    groups: tuple[str, ...] = ()  # the quota groups its nodes count against

    def latest_end(self, now: float) -> float:
        """When its nodes are free at the latest; `now` when nothing bounds it (see rule 4)."""
        if self.timeout_s is None:
            return now
        return max(now, self.started_at + self.timeout_s)


@dataclass(frozen=True)
class PoolState:
    """The pool at one moment: its idle live nodes, what runs, what waits."""

    now: float
    idle: tuple[str, ...]
    running: tuple[RunningJob, ...] = ()
    queued: tuple[QueuedJob, ...] = ()
    ordered: bool = False  # `queued` is in rule 1's order already (the leader keeps it so)

    @property
    def live_nodes(self) -> int:
        return len(self.idle) + sum(len(r.nodes) for r in self.running)


@dataclass(frozen=True)
class Assignment:
    """Start this attempt on these nodes (rank order: the first is the gang's leader)."""

    run_id: str
    attempt: int
    nodes: tuple[str, ...]
    backfilled: bool = False  # started ahead of the reservation


@dataclass(frozen=True)
class Reservation:
    """The gang at the head of the wait: `nodes` nodes by `start_at` at the latest."""

    run_id: str
    attempt: int
    nodes: int
    start_at: float
    extra_nodes: int  # nodes free at `start_at` beyond what the gang needs


@dataclass(frozen=True)
class Waiting:
    """A job that cannot start now, and why (`jobrunner status` shows the reason)."""

    run_id: str
    attempt: int
    nodes: int
    reason: str
    larger_than_pool: bool = False


@dataclass(frozen=True)
class Decision:
    assignments: tuple[Assignment, ...] = ()
    reservation: Reservation | None = None
    waiting: tuple[Waiting, ...] = ()  # the reservation's job, jobs over quota or larger than the pool
    live_nodes: int = 0

    @property
    def nodes_short(self) -> int:
        """How many nodes the pool lacks for its largest waiting job: what autoscale adds."""
        return max((w.nodes - self.live_nodes for w in self.waiting if w.larger_than_pool), default=0)


def job_order(job: QueuedJob) -> tuple[int, float, str, int]:
    """The sort key of rule 1: priority, store-time submission, then id and attempt."""
    return (-job.priority, job.submitted_at, job.run_id, job.attempt)


def too_big_reason(wanted: int, live: int) -> str:
    return f"waiting for {wanted} nodes, the pool has {live}"


def quota_group(kind: str, name: str) -> str:
    """The group key of rule 6: `experiment:mnist`, `user:alice`."""
    return f"{kind}:{name}"


def _over_quota(job: QueuedJob, held: dict[str, int]) -> str | None:
    for group, limit in job.quota:
        if held.get(group, 0) + job.nodes > limit:
            kind, _, name = group.partition(":")
            return f"over quota: {kind} {name} holds {held.get(group, 0)} of its {limit} nodes"
    return None


def _hold(held: dict[str, int], job: QueuedJob) -> None:
    for group, _ in job.quota:
        held[group] = held.get(group, 0) + job.nodes


def decide(state: PoolState) -> Decision:
    """The attempts to start now (see the module docstring for the rules)."""
    _check_nodes(state)
    now = state.now
    live = state.live_nodes
    free = sorted(state.idle)
    taken = 0  # free[:taken] are assigned in this pass
    # every job that holds nodes once this pass's assignments are made: (latest end, nodes)
    releases = [(r.latest_end(now), len(r.nodes)) for r in state.running]
    assignments: list[Assignment] = []
    waiting: list[Waiting] = []
    reservation: Reservation | None = None
    seen_waiting: list[QueuedJob] = []
    held: dict[str, int] = {}  # nodes each quota group holds (rule 6)
    for r in state.running:
        for group in r.groups:
            held[group] = held.get(group, 0) + len(r.nodes)
    for job in _in_order(state.queued, live, any_idle=bool(free), ordered=state.ordered):
        if job.nodes > live:
            reason = too_big_reason(job.nodes, live)
            waiting.append(Waiting(job.run_id, job.attempt, job.nodes, reason, larger_than_pool=True))
            seen_waiting.append(job)
            continue
        over = _over_quota(job, held) if job.quota else None
        if over is not None:
            waiting.append(Waiting(job.run_id, job.attempt, job.nodes, over))
            seen_waiting.append(job)
            continue
        left = len(free) - taken
        if left == 0 and reservation is not None:
            break  # nothing more can start: only the jobs larger than the pool are left to name
        if reservation is None:
            if job.nodes <= left:
                nodes = tuple(free[taken : taken + job.nodes])
                taken += job.nodes
                assignments.append(Assignment(job.run_id, job.attempt, nodes))
                releases.append((_latest_end(job, now), job.nodes))
                _hold(held, job)
                continue
            start_at, extra = _shadow(now, left, releases, job.nodes)
            reservation = Reservation(job.run_id, job.attempt, job.nodes, start_at, extra)
            seen_waiting.append(job)
            waiting.append(
                Waiting(job.run_id, job.attempt, job.nodes, _reserved_reason(job, left, start_at, now))
            )
            continue
        if job.nodes > left or job.timeout_s is None:
            continue
        if now + job.timeout_s <= reservation.start_at:
            pass  # done before the gang needs its nodes
        elif job.nodes <= reservation.extra_nodes:
            reservation = _with_extra(reservation, reservation.extra_nodes - job.nodes)
        else:
            continue
        nodes = tuple(free[taken : taken + job.nodes])
        taken += job.nodes
        assignments.append(Assignment(job.run_id, job.attempt, nodes, backfilled=True))
        _hold(held, job)
    else:
        return Decision(tuple(assignments), reservation, tuple(waiting), live)
    named = {(w.run_id, w.attempt) for w in waiting}
    rest = [j for j in state.queued if j.nodes > live and (j.run_id, j.attempt) not in named]
    for job in sorted(rest, key=job_order):
        reason = too_big_reason(job.nodes, live)
        waiting.append(Waiting(job.run_id, job.attempt, job.nodes, reason, larger_than_pool=True))
    keys = {(j.run_id, j.attempt): job_order(j) for j in (*seen_waiting, *rest)}
    waiting.sort(key=lambda w: keys[(w.run_id, w.attempt)])  # rule 1's order, as in a full walk
    return Decision(tuple(assignments), reservation, tuple(waiting), live)


def _in_order(
    queued: tuple[QueuedJob, ...], live: int, *, any_idle: bool, ordered: bool
) -> list[QueuedJob] | tuple[QueuedJob, ...]:
    """The jobs in rule 1's order; with no idle node only those the pass can act on (the jobs
    larger than the pool and the first that fits it, with any over-quota ones before it), so a
    full pool costs no sort."""
    if any_idle:
        return queued if ordered else sorted(queued, key=job_order)
    larger = [j for j in queued if j.nodes > live]
    fitting: Iterator[QueuedJob] = (j for j in queued if j.nodes <= live)
    if not ordered:
        listed = [j for j in queued if j.nodes <= live]
        if not any(j.quota for j in listed):
            return sorted(larger + ([min(listed, key=job_order)] if listed else []), key=job_order)
        fitting = iter(sorted(listed, key=job_order))
    head = []
    for job in fitting:  # up to the first that no quota can hold back: the reservation's
        head.append(job)
        if not job.quota:
            break
    return sorted(larger + head, key=job_order)


def _latest_end(job: QueuedJob, now: float) -> float:
    return now if job.timeout_s is None else now + job.timeout_s


def _shadow(now: float, free: int, releases: list[tuple[float, int]], needed: int) -> tuple[float, int]:
    """(the earliest time `needed` nodes are free, the nodes free then beyond `needed`).

    Every release at that same moment counts: nodes freed together are free together."""
    ordered = sorted(releases)
    have = free
    for i, (end, nodes) in enumerate(ordered):
        have += nodes
        last_at_this_time = i + 1 == len(ordered) or ordered[i + 1][0] != end
        if have >= needed and last_at_this_time:
            return end, have - needed
    return math.inf, 0  # only for a job larger than the live pool, which never gets here


def _with_extra(reservation: Reservation, extra: int) -> Reservation:
    return Reservation(
        reservation.run_id, reservation.attempt, reservation.nodes, reservation.start_at, extra
    )


def _reserved_reason(job: QueuedJob, free: int, start_at: float, now: float) -> str:
    wait = f"waiting for {job.nodes} nodes ({free} free now); "
    if start_at - now < 1:
        # the jobs it waits for have no `limits.timeout`: when they end is not known
        return wait + "next in line, as soon as running jobs free them"
    return wait + f"reserved to start within {start_at - now:.0f} s"


def _check_nodes(state: PoolState) -> None:
    seen: set[str] = set()
    for name in (*state.idle, *(n for r in state.running for n in r.nodes)):
        if name in seen:
            raise ValueError(f"node {name} is named twice in the pool state (idle or running)")
        seen.add(name)
