"""How an attempt ends: nodes report their parts, the pool scheduler settles the attempt.

Pure functions over `RunStatus`, applied inside ETag-guarded updates
(`jobrunner.store.status.update_status`), so that a report and a settling never overwrite
each other and settling twice changes nothing.

- The root cause is the earliest node failure (by time): a node stopped because a peer
  failed reports no failure kind of its own (torchelastic's rule: name the first failure).
- USER failures spend the retry budget (`trainstack.retry.max_attempts`), unless the exit
  code is one of `no_retry_exit_codes`. TIMEOUT fails at once. CANCELED wins over all.
- LOST_NODE, PREEMPTED and INFRASTRUCTURE requeue without spending the budget, up to
  `MAX_FREE_REQUEUES` times in a row, so that a job that breaks every node still ends.
- `settle` is the pool scheduler's conclusion of an attempt (`jobrunner.scheduler.judge`): it
  writes the part of every node that could not report itself (lost, never delivered, ended
  without a report) and of every node that said `ok` without writing (a node that exited 0
  leaves its part to the scheduler: one read and one write fewer per node), then concludes.
  A lost node wins over its peers' failures: a killed peer breaks the collective first, and
  the survivors' errors are not the user's.
"""

from __future__ import annotations

from typing import Any

from jobrunner.api import FailureKind, JobState
from jobrunner.spec.job import Retry
from jobrunner.store.status import NodeStatus, RunStatus, utc_now

MAX_FREE_REQUEUES = 5
_FREE = (FailureKind.LOST_NODE, FailureKind.PREEMPTED, FailureKind.INFRASTRUCTURE)


def report(status: RunStatus, node: NodeStatus) -> RunStatus | None:
    """`status` with this node's result for the current attempt (None if the run is over). A
    run still QUEUED at this attempt takes it too: rank 0 never marked it (lost, or its store
    failed), and a failure must not read as the silence of a clean exit (see `settle`)."""
    if status.state.terminal:
        return None
    return status.with_node(node)


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


def settle(
    status: RunStatus,
    retry: Retry,
    *,
    attempt: int,
    owners: tuple[str, ...],
    results: dict[str, str],
    undelivered: bool = False,
) -> RunStatus | None:
    """The run's next state once the scheduler found `attempt` over; None when the status is
    past it already (concluded before: settling again is a no-op).

    `owners` are the attempt's nodes in rank order (fewer than the gang when it was never
    fully delivered), `results` what each ended owner said (`lost` for a vanished one).
    """
    if status.state.terminal or status.attempt != attempt:
        return None
    now = utc_now()
    out = status
    lost = tuple(n for n in owners if results.get(n) == "lost")
    for rank in range(max(status.instance_count, len(owners))):
        have = next((n for n in out.nodes if n.rank == rank), None)
        if have is not None and have.finished_at:
            continue
        name = owners[rank] if rank < len(owners) else (have.name if have else f"rank {rank}")
        address = have.address if have else ""
        if name in lost:
            kind, why = FailureKind.LOST_NODE, f"node {name} was lost"
        elif results.get(name) == "ok":
            # a clean exit is not written by its node (`jobrunner.node.attempt`)
            out = out.with_node(
                NodeStatus(name=name, rank=rank, address=address, exit_code=0, finished_at=now)
            )
            continue
        elif rank >= len(owners):
            kind, why = FailureKind.INFRASTRUCTURE, f"no node took rank {rank}"
        else:
            kind, why = (
                FailureKind.INFRASTRUCTURE,
                f"node {name} ended without a report ({results.get(name)})",
            )
        out = out.with_node(
            NodeStatus(name=name, rank=rank, address=address, finished_at=now, failure_kind=kind, reason=why)
        )  # fmt: skip
    if out.cancel_requested:
        return conclude(out, retry)
    if undelivered:
        return _requeue(out, reason=f"attempt {attempt} never reached all its nodes")
    if lost:
        reason = f"node(s) {', '.join(lost)} lost during attempt {attempt}"
        if status.free_requeues < MAX_FREE_REQUEUES:
            return _requeue(out, reason=reason, failure_kind=FailureKind.LOST_NODE, exit_code=None,
                            free_requeues=status.free_requeues + 1)  # fmt: skip
        return out.moved_to(JobState.FAILED, note=f"{reason}; free requeues exhausted", reason=reason,
                            failure_kind=FailureKind.LOST_NODE)  # fmt: skip
    return conclude(out, retry)


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
