"""The node agent: takes jobs from its pool's queue, gangs up with other agents, runs them.

    Agent(store, AgentSettings(pool="local", name="local-0")).serve(stop_event)

One loop, one job at a time:

1. Gang board first (`jobrunner.gang`): if a multi-node job waits for nodes, take a seat in
   the earliest one and wait there until it is full (then run it) or gone.
2. Else the pool queue: a message is held with a visibility timeout that a background thread
   renews while the agent works on it; if the agent dies, the message comes back to another
   agent after the timeout. A single-node job runs here; a multi-node job is posted on the
   board (and its message deleted); a `join` message just sends the agent to the board.
3. A message for a run that is no longer queued: terminal or a later attempt -> dropped;
   the same attempt still preparing or running -> its holder may have died, or may only have
   been slow to renew it (a loaded node, a storage outage). The attempt's nodes decide
   (`jobrunner.liveness`): while one still works on the run, or while silence proves nothing,
   the message is kept (it comes back after its visibility timeout, to be checked again);
   once every node is gone, the run gets a new attempt here without spending its budget.
   A started gang on the board whose members are all gone is recovered the same way.

Idle cost (the Azure bill): an empty queue is polled with backoff from `idle_poll_min_s` to
`idle_poll_max_s` (default 5 s: 12 requests a minute), the board read every `board_poll_s`
(20 s) and the heartbeat written every `heartbeat_s` (30 s): about 17 requests a minute.

The agent's heartbeat (`jobrunner.registry`) runs on its own thread, so long staging or a
stuck store call never makes a live agent look dead. On SIGTERM the agent finishes nothing
new: the current attempt is stopped and reported by the caller's stop event, the record
says `stopped`.

Eviction (`jobrunner.preempt`, when `scheduled_events_url` is set): a Preempt or Terminate
notice for this node stops the agent like SIGTERM, but the attempt ends PREEMPTED (the
run is requeued, budget untouched, and the whole gang restarts); once the attempt is
reported the notice is acknowledged, and the agent takes no more work.

Unworkable input (`jobrunner.poison`): a queue message that does not parse, or whose run's
status.json or spec.json does not, goes to the poison queue and its run is failed with the
reason, instead of coming back to every agent after every visibility timeout.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from azure.storage.queue import QueueMessage

from jobrunner.api import FailureKind, Gang, GangMember, JobState, NodeFacts
from jobrunner.attempt import AttemptContext, Timing, run_attempt
from jobrunner.azurite import free_port
from jobrunner.datastores import LOCAL, Datastores
from jobrunner.doorbell import Doorbell, ring
from jobrunner.errors import NotFoundError, TrainstackError
from jobrunner.gang import Board, Entry, Seat, read_board, update_board
from jobrunner.liveness import Heartbeats, read_heartbeats
from jobrunner.messages import job_message, join_message, parse_message
from jobrunner.node import detect_node_facts
from jobrunner.outcome import conclude
from jobrunner.poison import fail_damaged_run, quarantine
from jobrunner.preempt import PreemptionWatch, node_resource_name
from jobrunner.registry import AgentRecord, alive_agents, beat
from jobrunner.spec import JobSpec
from jobrunner.status import (
    DamagedRunFileError,
    RunRef,
    RunStatus,
    parse_run_file,
    read_status,
    update_status,
    utc_now,
)
from jobrunner.store import RUNS, Store, queue_name
from jobrunner.tracking import finish_tracking_run

EXTRA_PORTS = 4  # per agent and gang, for per-task ports (TensorFlow)


@dataclass(frozen=True)
class AgentSettings:
    """The agent loop's settings: from `jobrunner agent` options, or from an agent config file
    (`jobrunner.config.AgentConfig`) through `jobrunner.pool_agent.agent_settings`."""

    pool: str
    name: str
    address: str = "127.0.0.1"
    work_dir: Path = Path(".trainstack/agent")
    visibility_timeout_s: int = 60
    heartbeat_s: float = 30.0
    idle_poll_min_s: float = 0.5
    idle_poll_max_s: float = 5.0
    board_poll_s: float = 20.0
    gang_poll_s: float = 1.0
    timing: Timing = field(default_factory=Timing)
    scheduled_events_url: str | None = None  # None: nothing announces evictions (not a Spot VM)
    datastores: Datastores = LOCAL  # a deployed pool's map from its agent config
    doorbell: Path | None = None  # local pools: a socket that submits ring (`jobrunner.doorbell`)
    job_user: str | None = None  # the unprivileged user jobs run as (None: the agent's own)
    tracking_uri: str | None = None  # the MLflow tracking server jobs log to (`jobrunner.tracking`)


class _Holder:
    """Keeps a queue message hidden from other agents while this one works on it."""

    def __init__(self, store: Store, queue: str, message: QueueMessage, timeout_s: int) -> None:
        self._store, self._queue, self.message, self._timeout = store, queue, message, timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="message-renewal", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self._timeout / 3):
            try:
                self.message = self._store.renew(
                    self._queue, self.message, visibility_timeout_s=self._timeout
                )
            except NotFoundError:
                return  # lost it: another agent may take it; the status checks keep that safe
            except TrainstackError:
                continue

    @property
    def finished(self) -> bool:
        return self._stop.is_set()

    def done(self, *, delete: bool) -> None:
        self._stop.set()
        self._thread.join()
        if delete:
            self._store.delete_message(self._queue, self.message)


class Agent:
    """One agent of a pool (see the module docstring)."""

    def __init__(self, store: Store, config: AgentSettings, facts: NodeFacts | None = None) -> None:
        self.store = store
        self.config = config
        self.queue = queue_name(config.pool)
        self.facts = facts or detect_node_facts(config.name, config.address)
        now = utc_now()
        self._record = AgentRecord(
            name=config.name, pool=config.pool, pid=os.getpid(), address=config.address,
            last_heartbeat=now, started_at=now,
        )  # fmt: skip
        self._record_lock = threading.Lock()
        self._next_board = 0.0
        self._preemption: PreemptionWatch | None = None

    # ----------------------------------------------------------------- heartbeat
    def _set(self, state: str, job: str | None) -> None:
        with self._record_lock:
            self._record = self._record.model_copy(update={"state": state, "current_job": job})
        self._beat()

    def _beat(self) -> None:
        with self._record_lock:
            record = self._record
        # a failed beat is retried by the next one; peers allow several missed beats
        with contextlib.suppress(TrainstackError):
            beat(self.store, record)

    def _heartbeats(self, stop: threading.Event) -> None:
        while not stop.wait(self.config.heartbeat_s):
            self._beat()

    # ---------------------------------------------------------------------- loop
    def serve(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Store trouble is waited out, never fatal."""
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        self._set("idle", None)
        beats = threading.Thread(target=self._heartbeats, args=(stop,), name="heartbeat", daemon=True)
        beats.start()
        idle = self.config.idle_poll_min_s
        self._preemption = self._watch_evictions(stop)
        bell = Doorbell.open(self.config.doorbell) if self.config.doorbell else None
        try:
            while not stop.is_set():
                try:
                    worked = self.step(stop)
                except TrainstackError:
                    worked = False
                if worked:
                    idle = self.config.idle_poll_min_s
                    continue
                if bell is not None and bell.wait(idle, stop):
                    idle = self.config.idle_poll_min_s
                    continue
                stop.wait(idle)
                idle = min(self.config.idle_poll_max_s, idle * 2)
        finally:
            if bell is not None:
                bell.close()
            self._set("stopped", None)
            if self._preemption is not None:
                # after the attempt was reported and requeued: now the VM may go
                self._preemption.acknowledge()
                self._preemption.stop()

    def _watch_evictions(self, stop: threading.Event) -> PreemptionWatch | None:
        url = self.config.scheduled_events_url
        if not url:
            return None
        node = node_resource_name(url, self.config.name)
        return PreemptionWatch(url, node, on_notice=lambda _notice: stop.set()).start()

    def step(self, stop: threading.Event) -> bool:
        """Do one piece of work; False when there was nothing to do."""
        now = time.monotonic()
        if now >= self._next_board:
            self._next_board = now + self.config.board_poll_s
            if self._take_seat(stop):
                return True
        message = self.store.receive(self.queue, visibility_timeout_s=self.config.visibility_timeout_s)
        if message is None:
            return False
        holder = _Holder(self.store, self.queue, message, self.config.visibility_timeout_s)
        parsed = parse_message(bytes(message.content))
        if parsed is None:
            self._quarantine(holder, "not a job runner message (expected JSON with kind, id and attempt)")
            return True
        kind, ref, attempt = parsed.kind, parsed.ref, parsed.attempt
        if kind == "join":
            holder.done(delete=True)
            self._take_seat(stop)
        else:
            delete = True
            try:
                delete = self._on_job(ref, attempt, stop)
            except DamagedRunFileError as exc:
                delete = False
                self._quarantine(holder, str(exc))
            except TrainstackError:
                # the store failed midway (a busy gang board, an outage): the job may be
                # nowhere else yet, so its message must come back rather than go
                delete = False
                raise
            finally:
                if not holder.finished:
                    holder.done(delete=delete)
        self._next_board = 0.0  # after a job, look at the board first: gangs go in order
        return True

    def _quarantine(self, holder: _Holder, reason: str) -> None:
        """Set an unworkable message aside (it stays queued if the store fails now)."""
        try:
            quarantine(self.store, self.config.pool, bytes(holder.message.content), reason)
        except TrainstackError:
            holder.done(delete=False)
            return
        holder.done(delete=True)

    # ------------------------------------------------------------------ one job
    def _on_job(self, ref: RunRef, attempt: int, stop: threading.Event) -> bool:
        """Handle a job message; returns whether to delete it."""
        try:
            status, _ = read_status(self.store, ref)
        except NotFoundError:
            return True
        if status.state.terminal or status.attempt > attempt:
            return True
        if status.state is not JobState.QUEUED:
            if not self._all_gone(ref.id, [n.name for n in status.nodes]):
                return False  # still in hands, or cannot tell yet: look again when it comes back
            why = f"{self.config.name} found its node(s) gone"
            status = update_status(self.store, ref, _lost_holder(attempt, why))
            if status.state is not JobState.QUEUED:
                return True
        spec = self._spec(ref)
        if spec is None:
            return True
        if spec.instance_count > 1:
            entry = Entry(
                job_id=ref.id, experiment=ref.experiment, attempt=status.attempt, size=spec.instance_count,
                seq=status.transitions[-1].at if status.transitions else utc_now(),
            )  # fmt: skip
            update_board(self.store, self.config.pool, lambda b: b.post(entry))
            for _ in range(spec.instance_count - 1):
                self.store.send(self.queue, join_message(entry.job_id, entry.attempt))
            if self.config.doorbell is not None:
                ring(self.config.doorbell.parent)  # the idle agents of a local pool, to the board
            self._next_board = 0.0
            return True
        me = GangMember(self.facts.name, self.facts.address, 0)
        gang = Gang(
            ref.id, status.attempt, (me,), 0, free_port(), tuple(free_port() for _ in range(EXTRA_PORTS))
        )
        self._run(ref, spec, gang, stop)
        return True

    def _spec(self, ref: RunRef) -> JobSpec | None:
        try:
            data, _ = self.store.get(RUNS, ref.spec_blob)
        except NotFoundError:
            return None
        return parse_run_file(JobSpec, data, ref.spec_blob)

    def _run(self, ref: RunRef, spec: JobSpec, gang: Gang, stop: threading.Event) -> None:
        self._set("busy", ref.id)
        try:
            ctx = AttemptContext(
                self.store,
                self.config.pool,
                ref,
                spec,
                self.facts,
                gang,
                self.config.work_dir,
                self.config.timing,
                stop,
                self._preemption,
                self.config.datastores,
                tracking_uri=self.config.tracking_uri,
                job_user=self.config.job_user,
            )
            run_attempt(ctx)
            concluded = update_status(self.store, ref, lambda s: conclude(s, spec.trainstack.retry))
            if concluded.state.terminal and self.config.tracking_uri is not None:
                with contextlib.suppress(TrainstackError):  # the MLflow run only says it runs on
                    finish_tracking_run(self.store, ref, concluded.state)
            if concluded.state is JobState.QUEUED and concluded.attempt > gang.attempt:
                self._requeue_once(ref, concluded)
        finally:
            self._set("idle", None)

    def _requeue_once(self, ref: RunRef, status: RunStatus) -> None:
        """Send the new attempt's message; only the node whose update concluded the attempt does."""
        last = status.transitions[-1] if status.transitions else None
        if last is not None and last.state is JobState.QUEUED and last.attempt == status.attempt:
            marker = f"{ref.blob('requeued')}/{status.attempt}"
            try:
                self.store.put(RUNS, marker, b"", if_absent=True)
            except TrainstackError:
                return  # another node of the gang sent it
            self.store.send(self.queue, job_message(ref, status.attempt))

    # ----------------------------------------------------------------- gangs
    def _seat(self) -> Seat:
        return Seat(
            name=self.facts.name, address=self.facts.address, port=free_port(),
            ports=tuple(free_port() for _ in range(EXTRA_PORTS)),
        )  # fmt: skip

    def _take_seat(self, stop: threading.Event) -> bool:
        """Join the earliest gang that needs a node, wait for it to fill, run it. False if none needs one."""
        board, _ = read_board(self.store, self.config.pool)
        if not any(not e.started for e in board.entries) and not self._orphans(board):
            return False
        seat = self._seat()
        alive = set(alive_agents(self.store, self.config.pool, self.config.timing.stale_after_s)) | {
            seat.name
        }
        board = update_board(self.store, self.config.pool, lambda b: b.prune(alive).place(seat))
        self._recover_orphans(board)
        entry = board.of_agent(seat.name)
        if entry is None:
            return False
        self._set("busy", entry.job_id)
        try:
            return self._wait_in_gang(seat, stop)
        finally:
            self._set("idle", None)

    def _wait_in_gang(self, seat: Seat, stop: threading.Event) -> bool:
        last_check = 0.0
        while not stop.is_set():
            board = update_board(self.store, self.config.pool, lambda b: b.place(seat))
            entry = board.of_agent(seat.name)
            if entry is None:
                return True
            if entry.started:
                self._run_entry(entry, stop)
                return True
            if time.monotonic() - last_check > self.config.timing.status_poll_s:
                last_check = time.monotonic()
                try:
                    over = self._entry_is_over(entry)
                except DamagedRunFileError as exc:
                    self._fail_entry(entry, str(exc))
                    return True
                if over:
                    update_board(self.store, self.config.pool, partial(Board.drop, job_id=entry.job_id))
                    return True
                alive = set(alive_agents(self.store, self.config.pool, self.config.timing.stale_after_s))
                update_board(self.store, self.config.pool, partial(Board.prune, alive=alive | {seat.name}))
            stop.wait(self.config.gang_poll_s)
        update_board(self.store, self.config.pool, lambda b: b.leave(seat.name, *_key(board, seat)))
        return True

    def _entry_is_over(self, entry: Entry) -> bool:
        try:
            status, _ = read_status(self.store, RunRef(experiment=entry.experiment, id=entry.job_id))
        except NotFoundError:
            return True
        return status.state.terminal or status.attempt != entry.attempt

    def _run_entry(self, entry: Entry, stop: threading.Event) -> None:
        ref = RunRef(experiment=entry.experiment, id=entry.job_id)
        try:
            spec = self._spec(ref)
            if spec is not None and not self._entry_is_over(entry):
                self._run(ref, spec, entry.gang(self.facts.name, extra_ports=EXTRA_PORTS), stop)
        except DamagedRunFileError as exc:
            self._fail_entry(entry, str(exc))
        finally:
            update_board(self.store, self.config.pool, lambda b: b.leave(self.facts.name, *entry.key))

    def _fail_entry(self, entry: Entry, reason: str) -> None:
        """A gang's run whose spec.json or status.json does not parse: fail it with the reason
        and take it off the board (its message is long gone, so nothing else would end it)."""
        ref = RunRef(experiment=entry.experiment, id=entry.job_id)
        fail_damaged_run(self.store, ref, reason, pool=self.config.pool)
        update_board(self.store, self.config.pool, lambda b: b.drop(entry.job_id))

    def _orphans(self, board: Board) -> bool:
        return any(e.started for e in board.entries)

    def _liveness(self) -> Heartbeats | None:
        return read_heartbeats(
            self.store, self.config.pool, self.config.timing.stale_after_s, witness=self.config.name
        )

    def _all_gone(self, job_id: str, nodes: list[str]) -> bool:
        """Whether no agent of `nodes` still works on the run (False when that cannot be told)."""
        beats = self._liveness()
        return beats is not None and all(beats.gone(n, job_id=job_id) for n in nodes)

    def _recover_orphans(self, board: Board) -> None:
        """A started gang whose members are all gone: requeue its run (no budget spent)."""
        started = [e for e in board.entries if e.started]
        beats = self._liveness() if started else None
        if beats is None:
            return
        for entry in started:
            if entry.started_s_ago() < self.config.timing.stale_after_s:
                # its members may not have written yet that they run it (one that moved here
                # from a later gang still names that one): their records say nothing yet
                continue
            if not all(beats.gone(m.name, job_id=entry.job_id) for m in entry.members):
                continue
            ref = RunRef(experiment=entry.experiment, id=entry.job_id)
            update_board(self.store, self.config.pool, partial(Board.drop, job_id=entry.job_id))
            try:
                why = f"{self.config.name} found its gang's node(s) gone"
                status = update_status(self.store, ref, _lost_holder(entry.attempt, why))
            except NotFoundError:
                continue
            if status.state is JobState.QUEUED and status.attempt > entry.attempt:
                self.store.send(self.queue, job_message(ref, status.attempt))


def _key(board: Board, seat: Seat) -> tuple[str, int]:
    entry = board.of_agent(seat.name)
    return entry.key if entry else ("", 0)


def _lost_holder(attempt: int, why: str):  # type: ignore[no-untyped-def]
    """A status change: an attempt whose nodes vanished gets a new attempt, budget untouched."""

    def change(s: RunStatus) -> RunStatus | None:
        if s.state.terminal or s.state is JobState.QUEUED or s.attempt != attempt:
            return None
        return s.moved_to(
            JobState.QUEUED,
            note=f"attempt {attempt} lost its node(s) ({why}); trying again",
            attempt=attempt + 1,
            nodes=(),
            failure_kind=FailureKind.LOST_NODE,
            free_requeues=s.free_requeues + 1,
        )

    return change
