"""The scheduling decision over drawn pool states: ties in priority and submission time, equal
start and end times, nodes freed at the same moment. Each property is a rule of
`jobrunner.scheduler.decide` written again here in its plainest form."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrunner.scheduler import Decision, PoolState, QueuedJob, RunningJob, decide, job_order

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIMES = st.integers(0, 6).map(float)  # few values: many equal timestamps
TIMEOUTS = st.none() | st.integers(1, 12).map(float)


@st.composite
def pool_states(draw: st.DrawFn) -> PoolState:
    names = [f"vm-{i}" for i in range(draw(st.integers(0, 12)))]
    draw(st.randoms()).shuffle(names)
    running: list[RunningJob] = []
    rest = names
    while rest and draw(st.booleans()):
        size = draw(st.integers(1, len(rest)))
        running.append(RunningJob(f"busy-{len(running)}", tuple(rest[:size]), draw(TIMES), draw(TIMEOUTS)))
        rest = rest[size:]
    queued = [
        QueuedJob(
            f"run-{i}",
            draw(st.integers(1, 2)),
            draw(st.integers(1, 14)),
            draw(TIMES),
            draw(st.integers(0, 1)),
            draw(TIMEOUTS),
        )  # fmt: skip
        for i in range(draw(st.integers(0, 10)))
    ]
    return PoolState(draw(TIMES) + 3.0, tuple(rest), tuple(running), tuple(queued))


def _free_at(state: PoolState, decision: Decision, t: float) -> int:
    """Nodes free at time `t` if every job holds its nodes until its latest end."""
    assigned = {n for a in decision.assignments for n in a.nodes}
    free = len(set(state.idle) - assigned)
    free += sum(len(r.nodes) for r in state.running if r.latest_end(state.now) <= t)
    jobs = {(j.run_id, j.attempt): j for j in state.queued}
    for a in decision.assignments:
        timeout = jobs[(a.run_id, a.attempt)].timeout_s
        if timeout is None or state.now + timeout <= t:
            free += len(a.nodes)
    return free


@SETTINGS
@given(pool_states())
def test_each_assignment_is_a_whole_gang_on_idle_nodes_used_once(state: PoolState) -> None:
    decision = decide(state)
    jobs = {(j.run_id, j.attempt): j for j in state.queued}
    used = [n for a in decision.assignments for n in a.nodes]
    assert len(used) == len(set(used))
    assert set(used) <= set(state.idle)
    for a in decision.assignments:
        assert len(a.nodes) == jobs[(a.run_id, a.attempt)].nodes


@SETTINGS
@given(pool_states())
def test_the_decision_does_not_depend_on_the_order_things_were_listed(state: PoolState) -> None:
    shuffled = list(state.queued), list(state.idle), list(state.running)
    rng = random.Random(len(state.queued))
    for part in shuffled:
        rng.shuffle(part)
    again = PoolState(state.now, tuple(shuffled[1]), tuple(shuffled[2]), tuple(shuffled[0]))
    assert decide(again) == decide(state)


@SETTINGS
@given(pool_states())
def test_a_job_is_passed_over_only_by_a_backfill_that_cannot_delay_the_reservation(state: PoolState) -> None:
    decision = decide(state)
    order = sorted(state.queued, key=job_order)
    started = {(a.run_id, a.attempt): a for a in decision.assignments}
    res = decision.reservation
    head = (
        None if res is None else next(j for j in order if (j.run_id, j.attempt) == (res.run_id, res.attempt))
    )
    for i, job in enumerate(order):
        if (job.run_id, job.attempt) not in started:
            continue
        skipped = [
            j for j in order[:i] if (j.run_id, j.attempt) not in started and j.nodes <= state.live_nodes
        ]
        if not skipped:
            assert not started[(job.run_id, job.attempt)].backfilled
            continue
        # something earlier waits: only behind the reservation, by a job with a timeout
        assert head is not None and head in skipped and started[(job.run_id, job.attempt)].backfilled
        assert job.timeout_s is not None
    if res is not None:
        assert head is not None
        assert _free_at(state, decision, res.start_at) >= head.nodes
        assert res.start_at >= state.now


@SETTINGS
@given(pool_states())
def test_the_reserved_start_is_the_earliest_the_gang_could_start(state: PoolState) -> None:
    decision = decide(state)
    res = decision.reservation
    if res is None:
        return
    before = Decision(tuple(a for a in decision.assignments if not a.backfilled))
    moments = sorted({state.now, *(r.latest_end(state.now) for r in state.running)})
    moments += [state.now + j.timeout_s for j in state.queued if j.timeout_s is not None]
    for t in moments:
        if t < res.start_at:
            assert _free_at(state, before, t) < res.nodes
    # the extra nodes are exactly those free at the reserved start beyond the gang's
    assert res.extra_nodes + res.nodes == _free_at(state, decision, res.start_at)


@SETTINGS
@given(pool_states())
def test_no_job_that_fits_is_left_waiting_without_a_reservation(state: PoolState) -> None:
    decision = decide(state)
    if decision.reservation is not None:
        return
    left = len(state.idle) - sum(len(a.nodes) for a in decision.assignments)
    started = {(a.run_id, a.attempt) for a in decision.assignments}
    for job in state.queued:
        if (job.run_id, job.attempt) not in started:
            assert job.nodes > left and job.nodes > state.live_nodes


@SETTINGS
@given(pool_states())
def test_a_job_larger_than_the_live_pool_waits_visibly_and_reserves_nothing(state: PoolState) -> None:
    decision = decide(state)
    big = {(j.run_id, j.attempt) for j in state.queued if j.nodes > state.live_nodes}
    said = {(w.run_id, w.attempt) for w in decision.waiting if w.larger_than_pool}
    assert said == big
    if decision.reservation is not None:
        assert (decision.reservation.run_id, decision.reservation.attempt) not in big


def test_the_waiting_reason_names_the_gang_and_the_pool() -> None:
    state = PoolState(
        0.0, ("a", "b", "c"), (RunningJob("x", ("d", "e"), 0.0, None),), (QueuedJob("r", 1, 8, 0.0),)
    )
    decision = decide(state)
    assert [w.reason for w in decision.waiting] == ["waiting for 8 nodes, the pool has 5"]
    assert decision.nodes_short == 3
    assert decision.assignments == ()


def test_two_gangs_submitted_in_the_same_millisecond_one_starts() -> None:
    # the old board moved an agent only to a strictly earlier gang: each waited in its own
    queued = (QueuedJob("run-b", 1, 2, 5.0), QueuedJob("run-a", 1, 2, 5.0))
    decision = decide(PoolState(6.0, ("vm-0", "vm-1", "vm-2"), (), queued))
    assert [(a.run_id, a.nodes) for a in decision.assignments] == [("run-a", ("vm-0", "vm-1"))]


def test_single_node_jobs_backfill_around_a_waiting_gang_only_when_they_end_in_time() -> None:
    running = (RunningJob("long", ("vm-2", "vm-3"), 0.0, 100.0),)
    queued = (
        QueuedJob("gang", 1, 4, 1.0, timeout_s=50.0),
        QueuedJob("short", 1, 1, 2.0, timeout_s=60.0),  # ends at 70 <= 100: starts
        QueuedJob("long-single", 1, 1, 3.0, timeout_s=500.0),  # would delay the gang: waits
        QueuedJob("no-timeout", 1, 1, 4.0),  # nothing bounds it: waits
    )
    decision = decide(PoolState(10.0, ("vm-0", "vm-1"), running, queued))
    assert [(a.run_id, a.backfilled) for a in decision.assignments] == [("short", True)]
    assert decision.reservation is not None
    assert (decision.reservation.run_id, decision.reservation.start_at) == ("gang", 100.0)


def test_priority_goes_before_submission_order() -> None:
    queued = (QueuedJob("early", 1, 1, 1.0), QueuedJob("urgent", 1, 1, 9.0, priority=5))
    decision = decide(PoolState(10.0, ("vm-0",), (), queued))
    assert [a.run_id for a in decision.assignments] == ["urgent"]


def test_a_node_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="vm-0"):
        decide(PoolState(0.0, ("vm-0",), (RunningJob("x", ("vm-0",), 0.0),)))


def test_a_long_job_backfills_only_onto_nodes_the_gang_will_not_need() -> None:
    running = (RunningJob("ends-at-100", ("vm-2", "vm-3", "vm-4"), 0.0, 100.0),)
    queued = (
        QueuedJob("gang", 1, 4, 1.0, timeout_s=50.0),  # 2 idle + 3 freed at 100: one node to spare
        QueuedJob("long-1", 1, 1, 2.0, timeout_s=500.0),  # takes the spare node
        QueuedJob("long-2", 1, 1, 3.0, timeout_s=500.0),  # would delay the gang: waits
    )
    decision = decide(PoolState(10.0, ("vm-0", "vm-1"), running, queued))
    assert [a.run_id for a in decision.assignments] == ["long-1"]
    assert decision.reservation is not None and decision.reservation.extra_nodes == 0


def test_the_reason_of_a_reserved_gang_says_when_it_starts_only_when_that_is_known() -> None:
    known = decide(
        PoolState(0.0, ("a",), (RunningJob("r-1", ("b",), 300.0, 0.0),), (QueuedJob("g", 1, 2, 0.0),))
    )
    assert [w.reason for w in known.waiting] == [
        "waiting for 2 nodes (1 free now); reserved to start within 300 s"
    ]
    unknown = decide(
        PoolState(0.0, ("a",), (RunningJob("r-1", ("b",), 0.0, None),), (QueuedJob("g", 1, 2, 0.0),))
    )
    assert [w.reason for w in unknown.waiting] == [
        "waiting for 2 nodes (1 free now); next in line, as soon as running jobs free them"
    ]


LIMITS = {"experiment:a": 3, "experiment:b": 6, "user:u": 5}


@st.composite
def states_with_quotas(draw: st.DrawFn) -> PoolState:
    """Pool states whose jobs count against groups of one limit each (the running ones may be
    over it already: a quota met late, or lowered)."""
    state = draw(pool_states())

    def groups() -> tuple[str, ...]:
        return tuple(g for g in LIMITS if draw(st.booleans()))

    running = tuple(RunningJob(r.run_id, r.nodes, r.started_at, r.timeout_s, groups()) for r in state.running)
    queued = tuple(
        QueuedJob(j.run_id, j.attempt, j.nodes, j.submitted_at, j.priority, j.timeout_s,
                  tuple((g, LIMITS[g]) for g in groups()))
        for j in state.queued
    )  # fmt: skip
    return PoolState(state.now, state.idle, running, queued)


@SETTINGS
@given(states_with_quotas())
def test_no_assignment_takes_a_group_past_its_quota(state: PoolState) -> None:
    decision = decide(state)
    held = {g: sum(len(r.nodes) for r in state.running if g in r.groups) for g in LIMITS}
    jobs = {(j.run_id, j.attempt): j for j in state.queued}
    for a in decision.assignments:  # in the order the pass made them
        for group, limit in jobs[(a.run_id, a.attempt)].quota:
            held[group] += len(a.nodes)
            assert held[group] <= limit, (group, held, a)
    over = {(w.run_id, w.attempt) for w in decision.waiting if w.reason.startswith("over quota")}
    if decision.reservation is not None:
        assert (decision.reservation.run_id, decision.reservation.attempt) not in over


def test_a_job_over_its_experiments_quota_waits_with_the_reason_and_others_go_on() -> None:
    mnist = (("experiment:mnist", 4),)
    state = PoolState(
        now=10.0,
        idle=("vm-3", "vm-4", "vm-5"),
        running=(RunningJob("old", ("vm-0", "vm-1", "vm-2"), 0.0, None, ("experiment:mnist",)),),
        queued=(
            QueuedJob("second", 1, 2, 1.0, quota=mnist),
            QueuedJob("other", 1, 2, 2.0, quota=(("experiment:cifar", 4),)),
            QueuedJob("small", 1, 1, 3.0, quota=mnist),
        ),
    )
    decision = decide(state)
    assert [(a.run_id, a.nodes) for a in decision.assignments] == [
        ("other", ("vm-3", "vm-4")),
        ("small", ("vm-5",)),
    ]
    (waiting,) = decision.waiting
    assert waiting.run_id == "second"
    assert waiting.reason == "over quota: experiment mnist holds 3 of its 4 nodes"
    assert decision.reservation is None  # an over-quota job reserves nothing


def test_a_full_pool_still_names_the_gang_behind_an_over_quota_job() -> None:
    state = PoolState(
        now=10.0, idle=(),
        running=(RunningJob("old", ("vm-0", "vm-1"), 0.0, 5.0, ("user:u",)),),
        queued=(QueuedJob("mine", 1, 1, 1.0, quota=(("user:u", 2),)), QueuedJob("theirs", 1, 2, 2.0)),
    )  # fmt: skip
    decision = decide(state)
    assert decision.reservation is not None and decision.reservation.run_id == "theirs"
    assert [w.run_id for w in decision.waiting] == ["mine", "theirs"]
