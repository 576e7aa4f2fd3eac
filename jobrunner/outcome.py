"""How an attempt ends: each node reports its part, the last report decides the run's next state.

Pure functions over `RunStatus`, applied inside ETag-guarded updates
(`jobrunner.status.update_status`), so that exactly one node of a gang concludes an attempt.

- The root cause is the earliest node failure (by time): a node stopped because a peer
  failed reports no failure kind of its own (torchelastic's rule: name the first failure).
- USER failures spend the retry budget (`trainstack.retry.max_attempts`), unless the exit
  code is one of `no_retry_exit_codes`. TIMEOUT fails at once. CANCELED wins over all.
- LOST_NODE, PREEMPTED and INFRASTRUCTURE requeue without spending the budget, up to
  `MAX_FREE_REQUEUES` times in a row, so that a job that breaks every node still ends.
"""

from __future__ import annotations

from typing import Any

from jobrunner.api import FailureKind, JobState
from jobrunner.spec import Retry
from jobrunner.status import NodeStatus, RunStatus, utc_now

MAX_FREE_REQUEUES = 5
_FREE = (FailureKind.LOST_NODE, FailureKind.PREEMPTED, FailureKind.INFRASTRUCTURE)


def report(status: RunStatus, node: NodeStatus, *, lost: tuple[str, ...] = ()) -> RunStatus | None:
    """`status` with this node's result for the current attempt (None if the attempt is over).

    `lost` names peers that stopped heartbeating: they are recorded as lost, since they
    cannot report themselves.
    """
    if status.state.terminal or status.state is JobState.QUEUED:
        return None
    out = status.with_node(node)
    for peer in out.nodes:
        if peer.name in lost and peer.finished_at is None:
            out = out.with_node(
                peer.model_copy(
                    update={
                        "finished_at": utc_now(),
                        "failure_kind": FailureKind.LOST_NODE,
                        "reason": f"node {peer.name} stopped heartbeating",
                    }
                )
            )
    return out


def all_reported(status: RunStatus) -> bool:
    return len(status.nodes) >= status.instance_count and all(n.finished_at for n in status.nodes)


def root_cause(status: RunStatus) -> NodeStatus | None:
    """The earliest node failure of the attempt, or None when no node failed on its own."""
    failed = [n for n in status.nodes if n.failure_kind is not None and n.finished_at]
    return min(failed, key=lambda n: (n.finished_at or "", n.rank)) if failed else None


def conclude(status: RunStatus, retry: Retry) -> RunStatus | None:
    """The run's next state once every node reported; None while some have not."""
    if status.state.terminal or not all_reported(status):
        return None
    root = root_cause(status)
    if status.cancel_requested or (root and root.failure_kind is FailureKind.CANCELED):
        code = root.exit_code if root else None
        return status.moved_to(
            JobState.CANCELED, note="canceled", failure_kind=FailureKind.CANCELED,
            reason="canceled on request", exit_code=code,
        )  # fmt: skip
    if root is None:
        codes = [n.exit_code for n in status.nodes]
        if all(c == 0 for c in codes):
            return status.moved_to(JobState.SUCCEEDED, exit_code=0, reason=None, failure_kind=None)
        bad = next(n for n in status.nodes if n.exit_code != 0)
        root = bad.model_copy(update={"failure_kind": FailureKind.USER})
    kind = root.failure_kind or FailureKind.USER
    reason = root.reason or f"node {root.name} exited with code {root.exit_code}"
    ended: dict[str, Any] = {"exit_code": root.exit_code, "reason": reason, "failure_kind": kind}
    if kind is FailureKind.USER:
        spent = status.user_failures + 1
        if spent < retry.max_attempts and root.exit_code not in retry.no_retry_exit_codes:
            return _requeue(status, user_failures=spent, **ended)
        return status.moved_to(JobState.FAILED, note=reason, user_failures=spent, **ended)
    if kind in _FREE and status.free_requeues < MAX_FREE_REQUEUES:
        return _requeue(status, free_requeues=status.free_requeues + 1, **ended)
    return status.moved_to(JobState.FAILED, note=reason, **ended)


def _requeue(status: RunStatus, *, reason: str, **changes: object) -> RunStatus:
    attempt = status.attempt + 1
    return status.moved_to(
        JobState.QUEUED,
        note=f"{reason}; trying again (attempt {attempt})",
        attempt=attempt,
        nodes=(),
        reason=reason,
        **changes,
    )
