"""How an attempt's node reports become the run's next state."""

from __future__ import annotations

from jobrunner.api import FailureKind, JobState
from jobrunner.outcome import MAX_FREE_REQUEUES, conclude, report
from jobrunner.spec import Retry
from jobrunner.status import NodeStatus, RunStatus, utc_now


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


def test_lost_peer_is_recorded_and_requeues_without_spending_the_budget() -> None:
    s = report(running(), done(0, -15, FailureKind.LOST_NODE), lost=("n1",))
    assert s is not None and all(n.finished_at for n in s.nodes)
    final = conclude(s, Retry(max_attempts=1))
    assert final is not None and final.state is JobState.QUEUED and final.user_failures == 0
    exhausted = conclude(s.model_copy(update={"free_requeues": MAX_FREE_REQUEUES}), Retry())
    assert exhausted is not None and exhausted.state is JobState.FAILED


def test_reports_after_the_end_change_nothing() -> None:
    s = running(1).moved_to(JobState.CANCELED)
    assert report(s, done(0, 0)) is None
