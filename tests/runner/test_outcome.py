"""How an attempt's node reports, and the scheduler's settling, become the run's next state."""

from __future__ import annotations

from jobrunner.api import FailureKind, JobState
from jobrunner.scheduler.outcome import MAX_FREE_REQUEUES, conclude, report, settle
from jobrunner.spec.job import Retry
from jobrunner.store.status import NodeStatus, RunStatus, utc_now


def running(nodes: int = 2, **changes: object) -> RunStatus:
    now = utc_now()
    base = RunStatus(id="r", experiment="e", pool="p", instance_count=nodes, submitted_at=now, updated_at=now)
    members = tuple(NodeStatus(name=f"n{i}", rank=i) for i in range(nodes))
    return base.moved_to(JobState.RUNNING, nodes=members).model_copy(update=changes)


def done(rank: int, code: int | None, kind: FailureKind | None = None, at: str | None = None) -> NodeStatus:
    return NodeStatus(
        name=f"n{rank}", rank=rank, exit_code=code, failure_kind=kind, finished_at=at or utc_now()
    )


def test_waits_for_every_node() -> None:
    s = report(running(), done(0, 0))
    assert s is not None and conclude(s, Retry()) is None


def test_all_zero_succeeds() -> None:
    s = report(report(running(), done(0, 0)), done(1, 0))  # type: ignore[arg-type]
    final = conclude(s, Retry())  # type: ignore[arg-type]
    assert final is not None and final.state is JobState.SUCCEEDED and final.exit_code == 0
    assert final.finished_at is not None


def test_earliest_failure_is_the_root_cause_and_the_budget_decides() -> None:
    s = report(running(), done(1, 3, FailureKind.USER, at="2026-01-01T00:00:01Z"))
    s = report(s, done(0, -15, None, at="2026-01-01T00:00:02Z"))  # type: ignore[arg-type]
    final = conclude(s, Retry(max_attempts=1))  # type: ignore[arg-type]
    assert final is not None and final.state is JobState.FAILED
    assert final.exit_code == 3 and final.failure_kind is FailureKind.USER and "n1" in (final.reason or "")
    again = conclude(s, Retry(max_attempts=2))  # type: ignore[arg-type]
    assert again is not None and again.state is JobState.QUEUED and again.attempt == 2
    assert again.user_failures == 1 and again.nodes == ()
    no_retry = conclude(s, Retry(max_attempts=2, no_retry_exit_codes=(3,)))  # type: ignore[arg-type]
    assert no_retry is not None and no_retry.state is JobState.FAILED


def test_timeout_fails_without_retry_and_cancel_wins() -> None:
    s = report(running(1), done(0, -15, FailureKind.TIMEOUT))
    assert conclude(s, Retry(max_attempts=5)).state is JobState.FAILED  # type: ignore[arg-type,union-attr]
    c = report(running(1, cancel_requested=True), done(0, -15, FailureKind.CANCELED))
    assert conclude(c, Retry()).state is JobState.CANCELED  # type: ignore[arg-type,union-attr]


def test_a_lost_node_report_requeues_without_spending_the_budget() -> None:
    s = report(report(running(), done(0, -15, FailureKind.LOST_NODE)), done(1, None, FailureKind.LOST_NODE))  # type: ignore[arg-type]
    assert s is not None and all(n.finished_at for n in s.nodes)
    final = conclude(s, Retry(max_attempts=1))
    assert final is not None and final.state is JobState.QUEUED and final.user_failures == 0
    exhausted = conclude(s.model_copy(update={"free_requeues": MAX_FREE_REQUEUES}), Retry())
    assert exhausted is not None and exhausted.state is JobState.FAILED


def test_reports_after_the_end_change_nothing() -> None:
    s = running(1).moved_to(JobState.CANCELED)
    assert report(s, done(0, 0)) is None


# ------------------------------------------------------------------ the scheduler's settle
OWNERS = ("n0", "n1")


def test_settle_a_lost_node_requeues_free_although_the_survivor_failed() -> None:
    survivor_failed = report(running(), done(0, 1, FailureKind.USER))  # its collective broke
    assert survivor_failed is not None
    s = settle(
        survivor_failed, Retry(max_attempts=3), attempt=1, owners=OWNERS, results={"n0": "ok", "n1": "lost"}
    )
    assert s is not None and s.state is JobState.QUEUED and s.attempt == 2
    assert s.failure_kind is FailureKind.LOST_NODE and s.user_failures == 0 and s.free_requeues == 1
    assert "node(s) n1 lost during attempt 1" in (s.transitions[-1].note or "")


def test_settle_fails_once_the_free_requeues_are_spent_and_never_settles_twice() -> None:
    spent = running(free_requeues=MAX_FREE_REQUEUES)
    s = settle(spent, Retry(), attempt=1, owners=OWNERS, results={"n0": "lost", "n1": "lost"})
    assert (
        s is not None
        and s.state is JobState.FAILED
        and "free requeues exhausted" in (s.transitions[-1].note or "")
    )
    assert settle(s, Retry(), attempt=1, owners=OWNERS, results={}) is None
    requeued = settle(running(), Retry(), attempt=1, owners=OWNERS, results={"n1": "lost"})
    assert requeued is not None and settle(requeued, Retry(), attempt=1, owners=OWNERS, results={}) is None


def test_settle_writes_in_a_node_that_ended_without_a_report_and_one_never_delivered() -> None:
    first_reported = report(running(), done(0, 0))
    assert first_reported is not None
    s = settle(first_reported, Retry(), attempt=1, owners=OWNERS, results={"n0": "ok", "n1": "fenced"})
    assert s is not None and s.state is JobState.QUEUED and s.failure_kind is FailureKind.INFRASTRUCTURE
    assert "n1 ended without a report (fenced)" in (s.reason or "")
    half = settle(running(), Retry(), attempt=1, owners=("n0",), results={"n0": "ok"}, undelivered=True)
    assert half is not None and half.state is JobState.QUEUED and half.free_requeues == 0
    assert "never reached all its nodes" in (half.transitions[-1].note or "")


def test_settle_writes_in_the_clean_exit_a_rank_past_0_left_to_it() -> None:
    rank_0 = report(running(), done(0, 0))
    assert rank_0 is not None
    s = settle(rank_0, Retry(), attempt=1, owners=OWNERS, results={"n0": "ok", "n1": "ok"})
    assert s is not None and s.state is JobState.SUCCEEDED and s.exit_code == 0
    assert [(n.name, n.exit_code, n.failure_kind) for n in s.nodes] == [("n0", 0, None), ("n1", 0, None)]
    assert all(n.finished_at for n in s.nodes)


def test_a_report_on_a_run_rank_0_never_marked_is_kept_and_decides() -> None:
    queued = running().moved_to(JobState.QUEUED)  # rank 0's PREPARING mark never landed
    s = report(queued, done(1, 3, FailureKind.USER))
    assert s is not None and s.nodes[1].failure_kind is FailureKind.USER
    settled = settle(s, Retry(), attempt=1, owners=OWNERS, results={"n0": "ok", "n1": "ok"})
    assert settled is not None and settled.state is JobState.FAILED
    assert settled.failure_kind is FailureKind.USER, "the failure is never read as a clean exit"


def test_settle_of_a_canceled_run_is_canceled_whatever_was_lost() -> None:
    s = settle(running(cancel_requested=True), Retry(), attempt=1, owners=OWNERS, results={"n1": "lost"})
    assert s is not None and s.state is JobState.CANCELED


def test_the_scheduler_and_the_status_cap_free_requeues_alike() -> None:
    from jobrunner.scheduler.protocol import ProtocolSettings

    assert ProtocolSettings().max_free_requeues == MAX_FREE_REQUEUES
