"""One attempt of a run on one node: stage, prepare, launch, watch, stage out, report.

    run_attempt(ctx) -> NodeStatus     (reported to the run's status document, or left to the
                                        scheduler: a clean exit)

`jobrunner.node.launch.run_plan` runs the processes (and stops them all on the first failure or
at `limits.timeout` -> TIMEOUT). Beside it a supervisor thread (torchelastic's shape: poll,
classify, act) looks at the run's status and stops the processes when:

- someone asked to cancel (`cancel_requested` in status.json)  -> CANCELED
- another gang member reported a failure                       -> stopped, no failure of its own
- this node got an eviction notice (Scheduled Events Preempt)   -> PREEMPTED (requeued)
- the agent stops the attempt (SIGTERM, the scheduler revoked   -> INFRASTRUCTURE (requeued)
  it, or the node was cut off from the store past its fence)

A lost peer is the pool scheduler's to find (one listing of the node blobs per pass): it
settles the attempt as LOST_NODE, whatever the survivors' processes said, and revokes it on
the survivors, which stops them here (`jobrunner.scheduler.protocol`).
On a notice the processes get at most `Notice.grace_s` between SIGTERM and SIGKILL, so
that logs and a last output sync (the job's checkpoints) fit in the notice.

The supervisor itself never waits for the store: its local checks (a notice, the agent
stopping) run every `LOCAL_CHECK_S` whatever the store does, and each kind of store work
has its own `jobrunner.node.worker.Worker` with a queue of one: the status and heartbeat reads
(a slow answer delays the next read, never a notice), the output sync every `sync_s` (a
1 GiB upload under way does not hold a Preempt: the sync is interrupted at its next block,
the processes are stopped at once, and the final sync sends the newest files, the job's
last checkpoint, first), the RUNNING mark, and the log shipper (`LogShipper`'s thread).
The supervisor watches staging too: a cancel or a notice stops the inputs' download.

Rank 0 alone moves the run to PREPARING and RUNNING (one read-modify-write per step for the
gang). The status looks back off: the first comes `status_poll_s` after the start (a cancel that came
before is caught by the read just before the command starts, or by rank 0's PREPARING read when
staging took less than `status_poll_s`), each next one twice as late as
the last, up to `STATUS_POLL_BACKOFF` times `status_poll_s` apart (16 s with the defaults). A
cancel, or a peer's failure, thus stops a running job within that cap plus one read (at worst
16 s on a pool; a long job costs one status read per 16 s and node, not per 2 s).

Failures before the user's command runs (staging, the store, launching) are INFRASTRUCTURE;
the preparation command failing is USER, as is the job's command exiting non-zero. The
processes' output goes by the chunk to the log spool and Batch AI's per-process files (in
the store a view of the merged logs, `jobrunner.node.batchai_runtime`: the output sync leaves
them alone).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jobrunner.api import FailureKind, Gang, JobState, LaunchPlan, NodeFacts, NodePaths
from jobrunner.errors import (
    ConfigError,
    ConflictError,
    JobSpecError,
    LaunchError,
    NotFoundError,
    StoreError,
    TrainstackError,
)
from jobrunner.node.batchai_runtime import BATCHAI_LOG_FILE, BatchAiLogFiles, StreamIndex, link_mounts
from jobrunner.node.isolation import JobUser, hand_over
from jobrunner.node.launch import LaunchResult, run_plan
from jobrunner.node.logship import LogShipper
from jobrunner.node.preempt import PREEMPT_GRACE_S, PreemptionWatch
from jobrunner.node.staging import OutputSync, stage_inputs, unpack_code
from jobrunner.node.worker import Worker
from jobrunner.plan.launch_plan import plan_launch
from jobrunner.scheduler.outcome import report
from jobrunner.spec.job import JobSpec, MpiDistribution
from jobrunner.store.client import RUNS, Store
from jobrunner.store.datastores import LOCAL, Datastores
from jobrunner.store.run_sas import run_store_access
from jobrunner.store.status import NodeStatus, RunRef, RunStatus, read_status, update_status, utc_now
from jobrunner.tracking.proxy import TrackingProxy, start_tracking_proxy, with_proxied_tracking
from jobrunner.tracking.runs import AZUREML_SCHEME, TrackingRecord, open_tracking_run, with_tracking

AGENT_STREAM = "agent"  # the log stream of the agent's own notes, per node
REPORT_PATIENCE_S = 600.0  # how long a node's final report waits for the store to come back
LOCAL_CHECK_S = 0.1  # how often the supervisor looks for a notice and the agent stopping
STATUS_POLL_BACKOFF = 8  # the status looks grow from status_poll_s to this many times it apart
TRACKING_WAIT_S = 15.0  # how long ranks past 0 wait for rank 0's MLflow run before making one


@dataclass(frozen=True)
class Timing:
    """How often the supervisor looks (seconds); small in tests, the defaults on a pool."""

    watch_s: float = 0.5
    status_poll_s: float = 2.0
    sync_s: float = 15.0
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
    job_user: str | None = None  # the unprivileged user the job runs as (jobrunner.node.isolation)
    tracking_uri: str | None = None  # the pool's MLflow tracking server (`jobrunner.tracking.runs`)


def node_paths(ctx: AttemptContext) -> NodePaths:
    root = ctx.work_dir / "runs" / ctx.ref.id / str(ctx.gang.attempt)
    outputs = {name: str(root / "outputs" / name) for name in ctx.spec.outputs}
    return NodePaths(
        root=str(root), code=str(root / "code"), outputs=outputs, logs=str(root / "code" / "logs"),
        temp=str(root / "tmp"), mounts=str(root / "mounts"),
    )  # fmt: skip


def run_attempt(ctx: AttemptContext) -> NodeStatus:
    """Run this node's part of the attempt and report it (`_reports_itself`); returns the part."""
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
    sync: OutputSync | None = None
    # An agent never dies of a job: whatever goes wrong in a step ends this attempt with a
    # classified failure and its reason (see `_failed`), and the agent takes the next job.
    try:
        marked = _mark(ctx, JobState.PREPARING)
        with _Supervisor(ctx, note, seen=marked) as watch:
            try:
                paths, sync = _stage(ctx, paths, note, watch.cancel)
            except Exception as exc:
                result = _staging_failed(me, watch, exc, note)
            else:
                try:
                    with _tracked_spec(ctx, note) as spec:
                        result = _launch(ctx, spec, paths, sync, me, shipper, note, watch)
                except Exception as exc:
                    result = _failed(me, note, "running the job", exc)
        if sync is not None:
            try:
                sync.sync(final=True)  # newest first: the checkpoint written on SIGTERM
            except Exception as exc:
                note(f"could not upload outputs: {_cause(exc)}")
    except Exception as exc:
        result = _failed(me, note, "starting the attempt", exc)
    finally:
        if not shipper.close():
            pass  # kept in the spool on this node: nothing more can be done for this attempt
    if _reports_itself(ctx, result):
        _report_patiently(ctx, lambda s: _if_attempt(ctx, s, lambda st: report(st, result)))
    shutil.rmtree(Path(paths.root) / "inputs", ignore_errors=True)
    return result


def _reports_itself(ctx: AttemptContext, result: NodeStatus) -> bool:
    """Whether this node writes its part into the status document: every node with something
    to say, and the rank 0 of an MPI gang, whose report the other nodes wait for. A node that
    exited 0 with nothing to say leaves it to the scheduler, which writes it in from the
    node's `ok` when it settles the attempt (`jobrunner.scheduler.outcome.settle`): a read and
    a write fewer per node."""
    clean = result.exit_code == 0 and result.failure_kind is None and result.reason is None
    awaited = (
        ctx.gang.node_rank == 0 and ctx.gang.size > 1 and isinstance(ctx.spec.distribution, MpiDistribution)
    )
    return awaited or not clean


def _cause(exc: BaseException) -> str:
    """One line for a reason: ours say what to do; anything else gets its type named."""
    return str(exc) if isinstance(exc, TrainstackError) else f"{type(exc).__name__}: {exc}"


def _failed(me: NodeStatus, note: Callable[[str], None], step: str, exc: Exception) -> NodeStatus:
    """End the attempt on this node after `exc` in `step`: USER when it is the job's own files
    (`ConfigError`: its code, inputs or spec), INFRASTRUCTURE otherwise (the store, this node,
    an error of the agent's), which requeues the run elsewhere up to the cap."""
    kind = FailureKind.USER if isinstance(exc, ConfigError) else FailureKind.INFRASTRUCTURE
    note(f"{step} failed: {_cause(exc)}")
    return _finished(me, None, kind, f"{step} on {me.name} failed: {_cause(exc)}")


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


def _mark(ctx: AttemptContext, state: JobState) -> RunStatus | None:
    """Move the run forward to `state` and list the gang: rank 0's to do, so that a step costs
    the gang one read and one write, not one per node (None on the other ranks). The status as
    stored afterwards."""
    if ctx.gang.node_rank != 0:
        return None

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

    return update_status(ctx.store, ctx.ref, change)


def _staging_failed(
    me: NodeStatus, watch: _Supervisor, exc: Exception, note: Callable[[str], None]
) -> NodeStatus:
    """The report when staging did not finish: stopped by the supervisor (a cancel, a notice,
    a lost peer) is that reason; anything else is classified by `_failed` (the job's own
    files: user; the rest: infrastructure)."""
    if watch.reason is not None:
        kind, reason = watch.reason
        return _finished(me, None, kind, reason)
    return _failed(me, note, "staging", exc)


def _stage(
    ctx: AttemptContext, paths: NodePaths, note: Callable[[str], None], stop: threading.Event
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
    inputs = stage_inputs(ctx.store, ctx.ref, ctx.spec, root / "inputs", ctx.datastores, stop=stop)
    paths = dataclasses.replace(paths, inputs=inputs)
    link_mounts(ctx.spec, paths, ctx.ref.id)  # Batch AI's $AZ_BATCHAI_JOB_MOUNT_ROOT/<mount>
    folders = {name: Path(p) for name, p in paths.outputs.items()}
    folders.setdefault("outputs", code / "outputs")
    folders.setdefault("logs", code / "logs")
    sync = OutputSync(ctx.store, ctx.ref, ctx.spec, folders, ctx.datastores, skip=_shipped_as_logs)
    if ctx.gang.attempt > 1:
        # a new attempt resumes from what the last one saved (its checkpoints)
        restored = sync.restore()
        if restored:
            note(f"restored {restored} output file(s) of the previous attempt")
    return paths, sync


def _shipped_as_logs(output: str, rel: str) -> bool:
    """Batch AI's per-process files in ./logs: a view of the logs in the store, not outputs."""
    return output == "logs" and BATCHAI_LOG_FILE.match(rel) is not None


class _Supervisor:
    """Watches the run while it stages and runs (see the module docstring); sets `cancel` to
    stop it. Its own thread only reads memory; store work goes to its workers."""

    def __init__(self, ctx: AttemptContext, note: Callable[[str], None], *, seen: RunStatus | None) -> None:
        self.ctx, self.note = ctx, note
        # the run's status as last read, and when (monotonic): a read just made need not be repeated
        self.seen: tuple[float, RunStatus] | None = None if seen is None else (time.monotonic(), seen)
        self.sync: OutputSync | None = None  # set once staging made it: then synced every sync_s
        self.cancel = threading.Event()
        self.reason: tuple[FailureKind | None, str] | None = None
        self.leader: NodeStatus | None = None  # the leader's report, for nodes that wait for it
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.peers = frozenset(m.name for m in ctx.gang.members if m.name != ctx.node.name)
        self._looker = Worker("status-watch", self._look)
        self._syncer = Worker("output-sync", self._sync, on_error=self._sync_failed)
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    def __enter__(self) -> _Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._looker.close(timeout=0)  # a read still waiting on the store: its answer is moot
        self._syncer.close()  # the final sync starts once this one stopped (interrupted on a notice)

    def stop(self, kind: FailureKind | None, reason: str) -> None:
        """Stop the run for `reason` (the first reason wins)."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = (kind, reason)
        self.note(reason)
        if self.sync is not None:
            # the final sync sends everything, newest first: on a notice its seconds go to the
            # last checkpoint rather than to the end of an older upload
            self.sync.interrupt()
        self.cancel.set()

    def _loop(self) -> None:
        timing = self.ctx.timing
        poll_s = timing.status_poll_s
        next_look = time.monotonic() + poll_s
        next_sync = time.monotonic() + timing.sync_s
        while not self._done.wait(min(LOCAL_CHECK_S, timing.watch_s)):
            notice = self.ctx.preemption.notice if self.ctx.preemption else None
            if notice is not None:
                self.stop(FailureKind.PREEMPTED, notice.reason)
            if self.ctx.agent_stop.is_set():
                # the job must not outlive its agent's hold on it; not the user's fault
                self.stop(FailureKind.INFRASTRUCTURE, f"agent {self.ctx.node.name} stopped the attempt")
            now = time.monotonic()
            if self.reason is None and now >= next_look and not self._looker.busy:
                poll_s = min(2 * poll_s, STATUS_POLL_BACKOFF * timing.status_poll_s)
                next_look = now + poll_s
                self._looker.kick()
            if self.sync is not None and self.reason is None and now >= next_sync:
                next_sync = now + timing.sync_s
                self._syncer.kick()

    def _sync(self) -> None:
        if self.sync is not None:
            self.sync.sync()

    def _sync_failed(self, exc: TrainstackError) -> None:
        self.note(f"output sync failed, trying again later: {exc}")

    def _look(self) -> None:
        try:
            reason, leader = _look_around(self.ctx, self.peers)
        except TrainstackError:
            return
        self.leader = leader or self.leader
        if reason is not None:
            self.stop(*reason)

    def wait_for_leader(self) -> None:
        """On a node whose ranks the leader starts (MPI): wait until the leader reports or a stop."""
        while self.leader is None and self.reason is None:
            self.cancel.wait(self.ctx.timing.watch_s)


@contextlib.contextmanager
def _tracked_spec(ctx: AttemptContext, note: Callable[[str], None]) -> Iterator[JobSpec]:
    """The job with its MLflow tracking variables, and the job's tracking endpoint (when the
    server needs one) for as long as it runs."""
    record = _tracking_run(ctx, note)
    proxy = _job_tracking_proxy(record, note)
    try:
        if proxy is not None:
            yield with_proxied_tracking(ctx.spec, proxy)
        else:
            yield with_tracking(ctx.spec, None if _needs_proxy(record) else record)
    finally:
        if proxy is not None:
            proxy.stop()


def _needs_proxy(record: TrackingRecord | None) -> bool:
    """A workspace's tracking server wants the node's token, which the job must not hold."""
    return record is not None and record.uri.startswith(AZUREML_SCHEME)


def _job_tracking_proxy(record: TrackingRecord | None, note: Callable[[str], None]) -> TrackingProxy | None:
    """The job's own endpoint to the workspace's tracking server (`jobrunner.tracking.proxy`);
    None for a server the job reaches itself, or when the endpoint cannot start (then its
    metrics are not tracked, which the agent's notes say)."""
    if record is None or not _needs_proxy(record):
        return None
    try:
        return start_tracking_proxy(record)
    except TrainstackError as exc:
        note(f"metrics are not tracked: the job's tracking endpoint did not start: {exc}")
        return None


def _launch(
    ctx: AttemptContext,
    spec: JobSpec,
    paths: NodePaths,
    sync: OutputSync,
    me: NodeStatus,
    shipper: LogShipper,
    note: Callable[[str], None],
    watch: _Supervisor,
) -> NodeStatus:
    try:
        plan = plan_launch(
            spec, ctx.node, ctx.gang, paths, store_access=run_store_access(ctx.store, ctx.ref, ctx.spec)
        )
    except JobSpecError as exc:  # the job asks for what this node cannot give: its fault
        return _finished(me, None, FailureKind.USER, f"cannot run here: {exc}")
    except TrainstackError as exc:
        return _finished(me, None, FailureKind.INFRASTRUCTURE, f"cannot plan the launch: {exc}")
    for line in plan.notes:
        note(line)
    if _cancel_requested(ctx, watch.seen):
        return _finished(me, None, FailureKind.CANCELED, "canceled on request")
    if plan.preparation is not None:
        note("running the preparation command")

    def mark_running() -> None:
        try:
            _mark(ctx, JobState.RUNNING)
        except TrainstackError as exc:
            note(f"could not mark the run running: {exc}")  # the report still concludes it

    status_writer = Worker("status-write", mark_running)

    def started() -> None:
        # the run stays preparing through the preparation command, as Batch AI's did; the
        # processes start without waiting for the store to take the mark
        status_writer.kick()
        note(f"node rank {ctx.gang.node_rank} of {ctx.gang.size}: starting {len(plan.processes)} process(es)")

    # stdout-wk-0.txt, ... in ./logs for the job; in the store a view of the merged logs
    batchai_logs = BatchAiLogFiles(Path(paths.logs))
    index = StreamIndex(shipper, Path(paths.root) / "spool", ctx.ref.logs_prefix(ctx.gang.attempt))

    def sink(log_name: str, stream: str, data: bytes) -> None:
        index(log_name, stream, data)
        shipper.write_chunk(log_name, data)
        batchai_logs(log_name, stream, data)

    watch.sync = sync
    with batchai_logs:
        try:
            user = _job_user(ctx, paths)
            result = run_plan(
                plan, sink, timeout=ctx.spec.limits.timeout, cancel=watch.cancel,
                grace_s=_grace_s(ctx), error_file=Path(paths.root) / "error.json", on_processes=started,
                user=user, child_errors_dir=Path(paths.temp or paths.root) if user else None,
            )  # fmt: skip
        except LaunchError as exc:
            return _finished(me, None, FailureKind.INFRASTRUCTURE, str(exc))
        finally:
            status_writer.close()  # the RUNNING mark lands before this node's report
        if plan.waits_for_leader and not result.canceled:
            watch.wait_for_leader()
    return _node_result(me, plan, result, watch)


def _job_user(ctx: AttemptContext, paths: NodePaths) -> JobUser | None:
    """The job's user, handed the attempt's writable folders (None: run as the agent)."""
    if ctx.job_user is None:
        return None
    user = JobUser.resolve(ctx.job_user)
    writable = [p for p in (paths.code, paths.temp, paths.mounts, *paths.outputs.values()) if p]
    hand_over(user, writable)
    return user


def _tracking_run(ctx: AttemptContext, note: Callable[[str], None]) -> TrackingRecord | None:
    """The run's MLflow run when the pool tracks; a tracking server that fails does not fail
    the job: its metrics are lost, which the agent's notes say."""
    if ctx.tracking_uri is None:
        return None
    try:
        wait_s = 0.0 if ctx.gang.node_rank == 0 else TRACKING_WAIT_S
        record = open_tracking_run(
            ctx.store, ctx.ref, ctx.spec, ctx.tracking_uri, pool=ctx.pool, wait_s=wait_s
        )
    except TrainstackError as exc:
        note(f"metrics are not tracked: {exc}")
        return None
    note(f"metrics go to MLflow run {record.run_id} on {record.uri}")
    return record


def _cancel_requested(ctx: AttemptContext, seen: tuple[float, RunStatus] | None) -> bool:
    """Whether a cancel came while this node was preparing (then nothing is started). A status
    read less than `status_poll_s` ago (rank 0's PREPARING mark, when staging was quick)
    answers without another read."""
    if seen is not None and time.monotonic() - seen[0] < ctx.timing.status_poll_s:
        status = seen[1]
    else:
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
) -> tuple[tuple[FailureKind | None, str] | None, NodeStatus | None]:
    """(why to stop or None, the leader's report if any).

    Store trouble is no reason: it raises StoreError, and the caller looks again later.
    """
    try:
        status, _ = read_status(ctx.store, ctx.ref)
    except NotFoundError:
        return (FailureKind.CANCELED, "the run was deleted"), None
    leader = next(
        (n for n in status.nodes if n.rank == 0 and n.finished_at and n.name != ctx.node.name), None
    )
    if status.cancel_requested or status.state is JobState.CANCELED:
        return (FailureKind.CANCELED, "canceled on request"), leader
    if status.attempt != ctx.gang.attempt or status.state.terminal:
        return (None, "stopped: this attempt is over"), leader
    failed = [n for n in status.nodes if n.name in peers and n.failure_kind is not None]
    if failed:
        return (None, f"stopped: node {failed[0].name} failed ({failed[0].reason})"), leader
    return None, leader
