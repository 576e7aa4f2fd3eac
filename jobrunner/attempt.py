"""One attempt of a run on one node: stage, prepare, launch, watch, stage out, report.

    run_attempt(ctx) -> NodeStatus     (already reported to the run's status document)

`jobrunner.launch.run_plan` runs the processes (and stops them all on the first failure or
at `limits.timeout` -> TIMEOUT). Beside it a supervisor thread (torchelastic's shape: poll,
classify, act) looks every `status_poll_s` at the run's status and the gang's heartbeats,
and stops the processes when:

- someone asked to cancel (`cancel_requested` in status.json)  -> CANCELED
- another gang member reported a failure                       -> stopped, no failure of its own
- another gang member stopped heartbeating                      -> LOST_NODE
- this node got an eviction notice (Scheduled Events Preempt)   -> PREEMPTED (requeued)
- this node's agent is stopping (SIGTERM)                       -> INFRASTRUCTURE (requeued)

Silence counts only while the store answers (`jobrunner.liveness`): after a storage outage
every heartbeat is old, so a peer is judged lost only once the store has been steady for a
while, and on a slow store only when its heartbeat lags well behind this node's own.
On a notice the processes get at most `Notice.grace_s` between SIGTERM and SIGKILL, so
that logs and a last output sync (the job's checkpoints) fit in the notice.

Failures before the user's command runs (staging, the store, launching) are INFRASTRUCTURE;
the preparation command failing is USER, as is the job's command exiting non-zero. Outputs
are synced every `sync_s` and once more at the end; logs are shipped by `LogShipper`.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobrunner.api import FailureKind, Gang, JobState, LaunchPlan, NodeFacts, NodePaths
from jobrunner.batchai_runtime import BatchAiLogFiles, link_mounts
from jobrunner.datastores import LOCAL, Datastores
from jobrunner.errors import ConflictError, LaunchError, NotFoundError, StoreError, TrainstackError
from jobrunner.launch import LaunchResult, run_plan
from jobrunner.liveness import read_heartbeats
from jobrunner.logship import LogShipper
from jobrunner.outcome import report
from jobrunner.plan import plan_launch
from jobrunner.preempt import PREEMPT_GRACE_S, PreemptionWatch
from jobrunner.spec import JobSpec
from jobrunner.staging import OutputSync, stage_inputs, unpack_code
from jobrunner.status import NodeStatus, RunRef, RunStatus, read_status, update_status, utc_now
from jobrunner.store import RUNS, Store
from jobrunner.tracking import TrackingRecord, open_tracking_run, with_tracking

AGENT_STREAM = "agent"  # the log stream of the agent's own notes, per node
REPORT_PATIENCE_S = 600.0  # how long a node's final report waits for the store to come back


@dataclass(frozen=True)
class Timing:
    """How often the supervisor looks (seconds); small in tests, the defaults on a pool."""

    watch_s: float = 0.5
    status_poll_s: float = 2.0
    sync_s: float = 15.0
    stale_after_s: float = 60.0
    log_ship_s: float = 2.0
    terminate_grace_s: float = 10.0


@dataclass(frozen=True)
class AttemptContext:
    store: Store
    pool: str
    ref: RunRef
    spec: JobSpec
    node: NodeFacts
    gang: Gang
    work_dir: Path
    timing: Timing
    agent_stop: threading.Event = field(default_factory=threading.Event)  # the agent is shutting down
    preemption: PreemptionWatch | None = None  # this node's eviction notices, when watched
    datastores: Datastores = LOCAL  # datastore name -> container (the agent config's map)
    tracking_uri: str | None = None  # the pool's MLflow tracking server (`jobrunner.tracking`)


def node_paths(ctx: AttemptContext) -> NodePaths:
    root = ctx.work_dir / "runs" / ctx.ref.id / str(ctx.gang.attempt)
    outputs = {name: str(root / "outputs" / name) for name in ctx.spec.outputs}
    return NodePaths(
        root=str(root), code=str(root / "code"), outputs=outputs, logs=str(root / "code" / "logs"),
        temp=str(root / "tmp"), mounts=str(root / "mounts"),
    )  # fmt: skip


def run_attempt(ctx: AttemptContext) -> NodeStatus:
    """Run this node's part of the attempt and report it; returns what was reported."""
    paths = node_paths(ctx)
    rank = ctx.gang.node_rank
    me = NodeStatus(name=ctx.node.name, rank=rank, address=ctx.node.address)
    shipper = LogShipper(
        ctx.store, ctx.ref.logs_prefix(ctx.gang.attempt), Path(paths.root) / "spool",
        interval_s=ctx.timing.log_ship_s,
    )  # fmt: skip
    note = shipper.sink(f"{AGENT_STREAM}.{ctx.node.name}")
    shipper.start()
    result: NodeStatus
    lost: tuple[str, ...] = ()
    try:
        _mark(ctx, JobState.PREPARING, me)
        try:
            paths, sync = _stage(ctx, paths, note)
        except TrainstackError as exc:
            note(f"staging failed: {exc}")
            result = _finished(me, None, FailureKind.INFRASTRUCTURE, f"staging on {me.name} failed: {exc}")
        else:
            result, lost = _prepare_and_run(ctx, paths, sync, me, shipper, note)
            try:
                sync.sync()
            except TrainstackError as exc:
                note(f"could not upload outputs: {exc}")
    finally:
        if not shipper.close():
            pass  # kept in the spool on this node: nothing more can be done for this attempt
    _report_patiently(ctx, lambda s: _if_attempt(ctx, s, lambda st: report(st, result, lost=lost)))
    shutil.rmtree(Path(paths.root) / "inputs", ignore_errors=True)
    return result


def _report_patiently(ctx: AttemptContext, change: Callable[[RunStatus], RunStatus | None]) -> None:
    """Write this node's report, waiting out a storage outage: a lost report would leave the
    gang's attempt unconcluded forever. Gives up (StoreError) after REPORT_PATIENCE_S."""
    deadline = time.monotonic() + REPORT_PATIENCE_S
    while True:
        try:
            update_status(ctx.store, ctx.ref, change)
            return
        except (NotFoundError, ConflictError):
            raise
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(ctx.timing.watch_s)


def _finished(me: NodeStatus, code: int | None, kind: FailureKind | None, reason: str | None) -> NodeStatus:
    return me.model_copy(
        update={"exit_code": code, "failure_kind": kind, "reason": reason, "finished_at": utc_now()}
    )


def _if_attempt(
    ctx: AttemptContext, status: RunStatus, change: Callable[[RunStatus], RunStatus | None]
) -> RunStatus | None:
    """Apply `change` only while the run is still on this attempt (a stale node must not write)."""
    return change(status) if status.attempt == ctx.gang.attempt else None


def _mark(ctx: AttemptContext, state: JobState, me: NodeStatus) -> None:
    """Move the run forward to `state` (the first node to get there does it) and list the gang."""

    def change(s: RunStatus) -> RunStatus | None:
        if s.state.terminal or s.attempt != ctx.gang.attempt:
            return None
        order = [JobState.QUEUED, JobState.PREPARING, JobState.RUNNING]
        out = s
        if not s.nodes:
            members = tuple(NodeStatus(name=m.name, rank=m.rank, address=m.address) for m in ctx.gang.members)
            out = out.model_copy(update={"nodes": members})
        if order.index(s.state) < order.index(state):
            out = out.moved_to(state, note=f"on {', '.join(m.name for m in ctx.gang.members)}")
        return out

    update_status(ctx.store, ctx.ref, change)
    del me


def _stage(
    ctx: AttemptContext, paths: NodePaths, note: Callable[[str], None]
) -> tuple[NodePaths, OutputSync]:
    root = Path(paths.root)
    code = Path(paths.code)
    code.mkdir(parents=True, exist_ok=True)
    if ctx.spec.code:
        note("downloading the code snapshot")
        data, _ = ctx.store.get(RUNS, ctx.ref.code_blob)
        unpack_code(data, code)
    for folder in (*paths.outputs.values(), paths.logs, paths.temp, str(code / "outputs")):
        Path(folder).mkdir(parents=True, exist_ok=True)
    if ctx.spec.data_inputs:
        note("staging inputs")
    inputs = stage_inputs(ctx.store, ctx.ref, ctx.spec, root / "inputs", ctx.datastores)
    paths = dataclasses.replace(paths, inputs=inputs)
    link_mounts(ctx.spec, paths, ctx.ref.id)  # Batch AI's $AZ_BATCHAI_JOB_MOUNT_ROOT/<mount>
    folders = {name: Path(p) for name, p in paths.outputs.items()}
    folders.setdefault("outputs", code / "outputs")
    folders.setdefault("logs", code / "logs")
    sync = OutputSync(ctx.store, ctx.ref, ctx.spec, folders, ctx.datastores)
    if ctx.gang.attempt > 1:
        # a new attempt resumes from what the last one saved (its checkpoints)
        restored = sync.restore()
        if restored:
            note(f"restored {restored} output file(s) of the previous attempt")
    return paths, sync


class _Supervisor:
    """Watches the run while the plan runs (see the module docstring); sets `cancel` to stop it."""

    def __init__(self, ctx: AttemptContext, sync: OutputSync, note: Callable[[str], None]) -> None:
        self.ctx, self.sync, self.note = ctx, sync, note
        self.cancel = threading.Event()
        self.reason: tuple[FailureKind | None, str] | None = None
        self.lost: tuple[str, ...] = ()
        self.leader: NodeStatus | None = None  # the leader's report, for nodes that wait for it
        self._done = threading.Event()
        self.peers = frozenset(m.name for m in ctx.gang.members if m.name != ctx.node.name)
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    def __enter__(self) -> _Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        next_sync = time.monotonic() + self.ctx.timing.sync_s
        while not self._done.wait(self.ctx.timing.status_poll_s):
            notice = self.ctx.preemption.notice if self.ctx.preemption else None
            if self.reason is None and notice is not None:
                self.reason = (FailureKind.PREEMPTED, notice.reason)
                self.note(self.reason[1])
                self.cancel.set()
            if self.reason is None and self.ctx.agent_stop.is_set():
                # the job must not outlive its agent; a stopped agent is not the user's fault
                self.reason = (FailureKind.INFRASTRUCTURE, f"agent {self.ctx.node.name} was stopped")
                self.note(self.reason[1])
                self.cancel.set()
            if self.reason is None:
                self._look()
            if time.monotonic() >= next_sync:
                next_sync = time.monotonic() + self.ctx.timing.sync_s
                try:
                    self.sync.sync()
                except TrainstackError as exc:
                    self.note(f"output sync failed, trying again later: {exc}")

    def _look(self) -> None:
        try:
            reason, lost, leader = _look_around(self.ctx, self.peers)
        except TrainstackError:
            return
        self.leader = leader or self.leader
        if reason is not None:
            self.reason, self.lost = reason, lost
            self.note(reason[1])
            self.cancel.set()

    def wait_for_leader(self) -> None:
        """On a node whose ranks the leader starts (MPI): wait until the leader reports or a stop."""
        while self.leader is None and self.reason is None:
            self.cancel.wait(self.ctx.timing.watch_s)


def _prepare_and_run(
    ctx: AttemptContext,
    paths: NodePaths,
    sync: OutputSync,
    me: NodeStatus,
    shipper: LogShipper,
    note: Callable[[str], None],
) -> tuple[NodeStatus, tuple[str, ...]]:
    try:
        plan = plan_launch(with_tracking(ctx.spec, _tracking_run(ctx, note)), ctx.node, ctx.gang, paths)
    except TrainstackError as exc:
        return _finished(me, None, FailureKind.INFRASTRUCTURE, f"cannot plan the launch: {exc}"), ()
    for line in plan.notes:
        note(line)
    if _cancel_requested(ctx):
        return _finished(me, None, FailureKind.CANCELED, "canceled on request"), ()
    if plan.preparation is not None:
        note("running the preparation command")

    def started() -> None:
        # the run stays preparing through the preparation command, as Batch AI's did
        try:
            _mark(ctx, JobState.RUNNING, me)
        except TrainstackError as exc:
            note(f"could not mark the run running: {exc}")  # the report still concludes it
        note(f"node rank {ctx.gang.node_rank} of {ctx.gang.size}: starting {len(plan.processes)} process(es)")

    batchai_logs = BatchAiLogFiles(Path(paths.logs))  # stdout-wk-0.txt, ... kept with ./logs

    def sink(log_name: str, stream: str, line: str) -> None:
        shipper.write(log_name, line)
        batchai_logs(log_name, stream, line)

    with _Supervisor(ctx, sync, note) as watch, batchai_logs:
        try:
            result = run_plan(
                plan, sink, timeout=ctx.spec.limits.timeout, cancel=watch.cancel,
                grace_s=_grace_s(ctx), error_file=Path(paths.root) / "error.json", on_processes=started,
            )  # fmt: skip
        except LaunchError as exc:
            return _finished(me, None, FailureKind.INFRASTRUCTURE, str(exc)), ()
        failed_at = utc_now()
        if plan.waits_for_leader and not result.canceled:
            watch.wait_for_leader()
    if watch.reason is None and result.root_cause is not None and not result.timed_out and watch.peers:
        # a killed peer breaks the collective first (a gloo/NCCL error here) and stops
        # heartbeating only later: that is a lost node, not the user's failure
        gone = _peers_lost_since(ctx, watch.peers, failed_at)
        if gone:
            watch.reason = (FailureKind.LOST_NODE, f"node(s) {', '.join(gone)} stopped heartbeating")
            watch.lost = gone
            note(watch.reason[1])
    return _node_result(me, plan, result, watch), watch.lost


def _tracking_run(ctx: AttemptContext, note: Callable[[str], None]) -> TrackingRecord | None:
    """The run's MLflow run when the pool tracks; a tracking server that fails does not fail
    the job: its metrics are lost, which the agent's notes say."""
    if ctx.tracking_uri is None:
        return None
    try:
        record = open_tracking_run(ctx.store, ctx.ref, ctx.spec, ctx.tracking_uri, pool=ctx.pool)
    except TrainstackError as exc:
        note(f"metrics are not tracked: {exc}")
        return None
    note(f"metrics go to MLflow run {record.run_id} on {record.uri}")
    return record


def _peers_lost_since(ctx: AttemptContext, peers: frozenset[str], since: str) -> tuple[str, ...]:
    """Which peers are gone, asked after this node's processes failed at `since`.

    A peer is alive once it reported or heartbeat after `since`, gone once its heartbeat is
    silent (`jobrunner.liveness`); waits (at most `stale_after_s` and a backoff step) until each is one or
    the other. Store trouble: none is called gone (the failure stays the user's).
    """
    pending, gone = set(peers), set()
    patience = ctx.timing.stale_after_s + ctx.store.retry.max_s + 2 * ctx.timing.status_poll_s
    deadline = time.monotonic() + patience
    while pending and time.monotonic() < deadline:
        try:
            status, _ = read_status(ctx.store, ctx.ref)
            beats = read_heartbeats(ctx.store, ctx.pool, ctx.timing.stale_after_s, witness=ctx.node.name)
        except TrainstackError:
            return ()
        if beats is None:  # the store just had trouble: silence proves nothing yet
            time.sleep(ctx.timing.watch_s)
            continue
        reported = {n.name for n in status.nodes if n.finished_at}
        for name in sorted(pending):
            record = beats.records.get(name)
            if name in reported or (record is not None and record.last_heartbeat > since):
                pending.discard(name)
            elif beats.gone(name):
                pending.discard(name)
                gone.add(name)
        if pending:
            time.sleep(ctx.timing.watch_s)
    return tuple(sorted(gone))


def _cancel_requested(ctx: AttemptContext) -> bool:
    """Whether a cancel came while this node was preparing (then nothing is started)."""
    try:
        status, _ = read_status(ctx.store, ctx.ref)
    except TrainstackError:
        return False  # the supervisor looks again once the processes run
    return status.cancel_requested or status.state is JobState.CANCELED


def _grace_s(ctx: AttemptContext) -> float:
    """SIGTERM-to-SIGKILL time: on a node that may be evicted, short enough to fit a notice."""
    if ctx.preemption is None:
        return ctx.timing.terminate_grace_s
    notice = ctx.preemption.notice
    return (
        notice.grace_s(ctx.timing.terminate_grace_s)
        if notice
        else min(ctx.timing.terminate_grace_s, PREEMPT_GRACE_S)
    )


def _node_result(me: NodeStatus, plan: LaunchPlan, result: LaunchResult, watch: _Supervisor) -> NodeStatus:
    """This node's report from how the plan ended and why the supervisor stopped it."""
    root = result.root_cause
    codes = [r.exit_code for r in result.processes]
    code = root.exit_code if root else next((c for c in codes if c != 0), 0)
    if watch.reason is not None:
        kind, reason = watch.reason
        return _finished(me, code, kind, reason)
    if result.timed_out:
        return _finished(me, code, FailureKind.TIMEOUT, "stopped at limits.timeout")
    if root is not None:
        what = "the preparation command" if root is result.preparation else root.log_name
        tail = f": {root.stderr_tail[-1]}" if root.stderr_tail else ""
        return _finished(me, code, FailureKind.USER, f"{what} on {me.name} exited with code {code}{tail}")
    if plan.waits_for_leader and watch.leader is not None:
        return _finished(me, 0, None, f"ranks run by the leader {watch.leader.name}")
    return _finished(me, code, None, None)


def _look_around(
    ctx: AttemptContext, peers: frozenset[str]
) -> tuple[tuple[FailureKind | None, str] | None, tuple[str, ...], NodeStatus | None]:
    """(why to stop or None, peers lost, the leader's report if any).

    Store trouble is no reason: it raises StoreError, and the caller looks again later.
    Silent peers count only when silence means something (`jobrunner.liveness`).
    """
    try:
        status, _ = read_status(ctx.store, ctx.ref)
    except NotFoundError:
        return (FailureKind.CANCELED, "the run was deleted"), (), None
    leader = next(
        (n for n in status.nodes if n.rank == 0 and n.finished_at and n.name != ctx.node.name), None
    )
    if status.cancel_requested or status.state is JobState.CANCELED:
        return (FailureKind.CANCELED, "canceled on request"), (), leader
    if status.attempt != ctx.gang.attempt or status.state.terminal:
        return (None, "stopped: this attempt is over"), (), leader
    failed = [n for n in status.nodes if n.name in peers and n.failure_kind is not None]
    if failed:
        return (None, f"stopped: node {failed[0].name} failed ({failed[0].reason})"), (), leader
    reported = {n.name for n in status.nodes if n.finished_at}
    pending = peers - reported  # a peer that finished its part may go on to other work
    beats = (
        read_heartbeats(ctx.store, ctx.pool, ctx.timing.stale_after_s, witness=ctx.node.name)
        if pending
        else None
    )
    if beats is not None:
        gone = tuple(sorted(p for p in pending if beats.gone(p)))
        if gone:
            return (FailureKind.LOST_NODE, f"node(s) {', '.join(gone)} stopped heartbeating"), gone, leader
    return None, (), leader
