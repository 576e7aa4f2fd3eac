"""The node agent: every node of a pool executes what the pool's scheduler assigns to it, and
whichever agent holds the scheduler's lease also schedules.

    Agent(store, AgentSettings(pool="local", name="local-0")).serve(stop_event)

One loop, two roles (`jobrunner.scheduler.protocol`):

- the node (`NodeAgent`): writes its blob when something changes (it started, an attempt
  ended) and for liveness every `beat_busy_s`; while idle it reads its blob `beat_idle_s`
  after it reported, then at doubling gaps up to `idle_max_s`, and an assignment from the
  leader shows there; the agent starts that attempt (`AttemptExecutor`, on its own thread:
  staging, launch, logs, preemption, the report in the run's status.json:
  `jobrunner.node.attempt`). When the attempt ends the node writes at once, so the scheduler
  sees it on its next pass (on a local pool the doorbell, `jobrunner.node.doorbell`, makes that
  pass, and the assigned nodes' reads, happen now). A node cut off from the store stops its
  attempt after `fence_s`; a restarted agent is a new incarnation and never re-enters an
  attempt it was in.
- the sweeps (`jobrunner.sweep.conductor`): while the agent leads, a thread of its own
  gives every sweep of the pool a pass every few seconds (trials submitted, read, stopped
  early, the parent concluded); its record lives with the sweep, so the next leader goes on.
- the leader (`Leader`): an idle agent that has heard from no leader for `leader_try_s`
  tries for the pool's lease (then at doubling gaps); the holder takes submissions off the
  pool queue, decides (gang placement with EASY backfill, `jobrunner.scheduler.decide`) and
  concludes attempts from one listing of the node blobs per pass, through the runs' status
  documents (`jobrunner.scheduler.judge`). What it waits for ("waiting for 8 nodes, the
  pool has 5") is published for `jobrunner pool status`.

Idle cost (the Azure bill), with the defaults: an idle node reads its blob at most once
every `idle_max_s` (8 minutes) once it has been idle a while, writes once every 30 minutes
and tries for the lease at most every 4 to 16 minutes: under one request a minute. The
leader lists the nodes once per pass (every 30 s while anything is queued or running, every
minute otherwise), the pending attempts every 5 minutes, and asks the queue at each pass
that leaves nodes idle (every 4 minutes otherwise); the sweeps' thread
lists the pool's sweeps 4 times a minute.

On SIGTERM the agent takes no new work: the attempt is stopped and reported (requeued
without spending the budget), a last beat says the node stopped, and a leading agent runs a
last pass so the attempt is concluded before it goes. A Preempt or Terminate notice
(`jobrunner.node.preempt`, when `scheduled_events_url` is set) stops the agent the same way, but
the attempt ends PREEMPTED; once it is reported the notice is acknowledged.

A submission that is not one of ours, or names fields out of range, goes to the poison queue
(`jobrunner.store.poison`) with the reason, and the run it names is failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from jobrunner.api import Gang, GangMember, NodeFacts
from jobrunner.errors import NotFoundError, TrainstackError
from jobrunner.local.azurite import free_port
from jobrunner.node.attempt import AttemptContext, Timing, run_attempt
from jobrunner.node.doorbell import ASSIGNED, FOR_LEADER, Doorbell, ring
from jobrunner.node.facts import detect_node_facts
from jobrunner.node.preempt import PreemptionWatch, node_resource_name
from jobrunner.scheduler.autoscale import DemandGauges
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.scheduler.judge import RunJudge, run_ref
from jobrunner.scheduler.protocol import RUNS as SCHED_RUNS
from jobrunner.scheduler.protocol import (
    Leader,
    NodeAgent,
    PassReport,
    ProtocolSettings,
    RunDoc,
    Submission,
)
from jobrunner.scheduler.report import PoolReport, publish_report
from jobrunner.spec.job import JobSpec
from jobrunner.store.client import RUNS, Store
from jobrunner.store.datastores import LOCAL, Datastores
from jobrunner.store.poison import fail_damaged_run, quarantine
from jobrunner.store.status import DamagedRunFileError, parse_run_file
from jobrunner.sweep.conductor import IDLE_PASS_S, PASS_S, SweepConductor
from jobrunner.tracking.runs import preload_client

EXTRA_PORTS = 4  # per agent and gang, for per-task ports (TensorFlow)
LEASE_MIN_S = 15  # Azure's shortest blob lease
STOP_PATIENCE_S = 120.0  # how long a stopping agent waits for its attempt's report
FINISH_PATIENCE_S = 5.0  # ... and for the MLflow runs of the runs it settled to be ended
_SLICE_S = 0.25  # the loop looks at its stop event at least this often
DOORBELL_LOOK_FACTOR = 10  # an idle node with a doorbell looks this many heartbeats apart at first

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    """Every setting of an agent, with its one default: the `jobrunner agent` options and the
    agent config file (`jobrunner.node.config.AgentConfig`, through
    `jobrunner.node.pool_agent.agent_settings`) override what they name (`with_timings`)."""

    pool: str
    name: str
    address: str = "127.0.0.1"
    work_dir: Path = Path(".trainstack/agent")
    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    timing: Timing = field(default_factory=Timing)
    scheduled_events_url: str | None = None  # None: nothing announces evictions (not a Spot VM)
    datastores: Datastores = LOCAL  # a deployed pool's map from its agent config
    doorbell: Path | None = None  # local pools: a socket that submits ring (`jobrunner.node.doorbell`)
    job_user: str | None = None  # the unprivileged user jobs run as (None: the agent's own)
    tracking_uri: str | None = None  # the MLflow tracking server jobs log to (`jobrunner.tracking.runs`)

    def with_timings(
        self, *, heartbeat_s: float | None = None, stale_after_s: float | None = None,
        status_poll_s: float | None = None, sync_s: float | None = None,
        terminate_grace_s: float | None = None,
    ) -> AgentSettings:  # fmt: skip
        """These settings with the timings given (None: keep the default). `stale_after_s`
        scales the protocol with it: a node fences itself at 70 % of it and writes at least
        five times within it, and the lease is as short as Azure allows below it; the leader
        passes at least as often as idle nodes first look, and backs off no further than
        four times that (`heartbeat_s` is the idle node's first look at its blob). With a
        doorbell (a local pool) the leader rings the node when it assigns, so the idle node
        looks only `DOORBELL_LOOK_FACTOR` times as late, for a ring it missed."""
        protocol = self.protocol
        if heartbeat_s is not None:
            try_s = min(protocol.leader_try_s, max(4 * heartbeat_s, 1.0))
            look_s = heartbeat_s if self.doorbell is None else DOORBELL_LOOK_FACTOR * heartbeat_s
            protocol = replace(
                protocol,
                beat_idle_s=min(protocol.beat_idle_s, look_s),
                idle_max_s=min(protocol.idle_max_s, 4 * look_s),
                pass_s=min(protocol.pass_s, heartbeat_s),
                pass_max_s=min(protocol.pass_max_s, 4 * heartbeat_s),
                pending_list_s=min(protocol.pending_list_s, 5 * heartbeat_s),
                intake_max_s=min(protocol.intake_max_s, 4 * heartbeat_s),
                leader_try_s=try_s,
                leader_try_max_s=min(protocol.leader_try_max_s, 4 * try_s),
                steady_passes=self.doorbell is None,  # a doorbell rings the leader when a node reports
            )
        if stale_after_s is not None:
            lease_s = int(min(protocol.lease_s, max(LEASE_MIN_S, stale_after_s)))
            protocol = replace(
                protocol, stale_after_s=stale_after_s, fence_s=0.7 * stale_after_s,
                beat_busy_s=min(protocol.beat_busy_s, stale_after_s / 5),
                lease_s=lease_s, renew_s=lease_s / 3,
            )  # fmt: skip
        timing = self.timing
        for name, value in (("status_poll_s", status_poll_s), ("sync_s", sync_s),
                            ("terminate_grace_s", terminate_grace_s)):  # fmt: skip
            if value is not None:
                timing = replace(timing, **{name: value})
        return replace(self, protocol=protocol, timing=timing)


def endpoint_text(address: str, port: int, ports: tuple[int, ...]) -> str:
    """What a node offers its gang: `address|port|p1,p2,...` (an IPv6 address has colons)."""
    return f"{address}|{port}|{','.join(map(str, ports))}"


def gang_of(doc: RunDoc, attempt: int, rank: int) -> Gang:
    """The gang of `attempt` as its `rank` sees it, from the endpoints the owners offered: the
    leader's port for the rendezvous, and every member's own ports (`Gang.ports`), so that
    each node computes the same cluster (TensorFlow's TF_CONFIG)."""
    members, ports = [], {}
    for i, ((name, _), text) in enumerate(zip(doc.owners, doc.endpoints, strict=True)):
        address, port, extra = text.split("|")
        members.append(GangMember(name, address, i))
        ports[i] = (int(port), tuple(int(p) for p in extra.split(",") if p))
    every = tuple(p for i in range(len(members)) for p in ports[i][1])  # each member's, rank order
    return Gang(doc.id, attempt, tuple(members), rank, ports[0][0], every)


def _assigned_doc(body: bytes, run: str, attempt: int) -> RunDoc | None:
    """The run's document the leader wrote with the assignment, when it names this attempt's
    owners (None: read it from the store, as from a leader that wrote none)."""
    if not body:
        return None
    try:
        doc = RunDoc.decode(body)
    except (ValueError, KeyError, TypeError):
        return None
    return doc if doc.id == run and doc.attempt == attempt and doc.owners else None


class AttemptExecutor:
    """Runs one attempt at a time on its own thread (`protocol.Executor`); `done` is called on
    that thread with `ok` once the node's part is reported (or `error` if it never could be)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self, run: str, attempt: int, rank: int, size: int, done: Callable[[str], None], doc: bytes = b""
    ) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(run, attempt, rank, size, done, self._stop, doc), name=f"attempt-{run}",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.running

    def _run(self, run: str, attempt: int, rank: int, size: int, done: Callable[[str], None],
             stop: threading.Event, assigned: bytes) -> None:  # fmt: skip
        agent = self.agent
        result = "ok"
        try:
            doc = _assigned_doc(assigned, run, attempt) or RunDoc.decode(
                agent.pool_store.get(SCHED_RUNS + run)[0]
            )
            ref = run_ref(agent.store, doc)
            try:
                spec = parse_run_file(JobSpec, agent.store.get(RUNS, ref.spec_blob)[0], ref.spec_blob)
            except DamagedRunFileError as exc:
                fail_damaged_run(agent.store, ref, str(exc), pool=agent.config.pool)
                return
            gang = gang_of(doc, attempt, rank)
            log.info("run %s attempt %d: rank %d of %d", run, attempt, rank, size)
            ctx = AttemptContext(
                agent.store, agent.config.pool, ref, spec, agent.facts, gang, agent.config.work_dir,
                agent.config.timing, stop, agent.preemption, agent.config.datastores,
                tracking_uri=agent.config.tracking_uri, job_user=agent.config.job_user,
            )  # fmt: skip
            reported = run_attempt(ctx)
            log.info("run %s attempt %d: reported %s", run, attempt, reported.failure_kind or "exit code 0")
        except NotFoundError:
            log.warning("run %s is gone from the store", run)
        except Exception as exc:  # an agent never dies of a job: the scheduler settles the attempt
            log.exception("run %s attempt %d ended without a report", run, attempt)
            result = f"error: {type(exc).__name__}"[:200]
        finally:
            del done  # the node's state is the loop's: the result goes through it
            agent.attempt_ended(result)


class Agent:
    """One agent of a pool (see the module docstring)."""

    def __init__(self, store: Store, config: AgentSettings, facts: NodeFacts | None = None) -> None:
        self.store = store
        self.config = config
        self.facts = facts or detect_node_facts(config.name, config.address)
        self.pool_store = AzurePoolStore(store, config.pool)
        self.preemption: PreemptionWatch | None = None
        self.executor = AttemptExecutor(self)
        self._results: queue.Queue[str] = queue.Queue()
        self._wake = threading.Event()
        incarnation = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.node = NodeAgent(
            self.pool_store, config.name, incarnation, self.executor, config.protocol,
            facts={"endpoint": self._endpoint()}, on_state=self._on_state, clock=time.monotonic,
        )  # fmt: skip
        self.judge = judge = RunJudge(store, config.pool, tracking_uri=config.tracking_uri)
        self.leader = Leader(
            self.pool_store, f"{config.name}#{incarnation}", config.protocol,
            judge=judge, admit=judge.admit, refuse=judge.refuse, on_poison=self._poison,
            on_pass=self._passed, on_conclude=self._concluded,
        )  # fmt: skip
        self._published: PoolReport | None = None
        self.gauges = DemandGauges(store, config.pool)
        # a sweep's passes follow the scheduler's: at most every 2 s while one runs, every
        # 3 passes (90 s by default) while there is none; a local pool's doorbell wakes the
        # conductor on a submit, so there the listing is only for a ring it missed
        pass_s = config.protocol.pass_s
        idle_pass_s = 3 * pass_s if config.doorbell is None else max(3 * pass_s, IDLE_PASS_S)
        self.sweeps = SweepConductor(store, config.pool, pass_s=min(PASS_S, pass_s), idle_pass_s=idle_pass_s)

    # ---------------------------------------------------------------------- loop
    def serve(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Store trouble is waited out, never fatal."""
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        if self.config.tracking_uri:
            threading.Thread(target=preload_client, name="mlflow-import", daemon=True).start()
        self.preemption = self._watch_evictions(stop)
        bell = Doorbell.open(self.config.doorbell) if self.config.doorbell else None
        log.info("agent %s serving pool %s as incarnation %s", self.config.name, self.config.pool,
                 self.node.incarnation)  # fmt: skip
        sweeping = threading.Thread(target=self._drive_sweeps, args=(stop,), name="sweeps", daemon=True)
        sweeping.start()
        next_node = next_lead = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                ended = self._take_results()
                if ended:
                    next_node = now
                if now >= next_node:
                    next_node = now + self.node.step(now)
                if ended and self.config.doorbell is not None:
                    ring(self.config.doorbell.parent)  # a local pool's leader settles it now
                if now >= next_lead:
                    next_lead = now + self.leader.step(now, idle=self.node.may_lead(now))
                if self._sleep(min(next_node, next_lead) - time.monotonic(), stop, bell):
                    next_node = next_lead = 0.0  # rung: an assignment or a submission, look now
                    if bell is not None and ASSIGNED in bell.rung:
                        self.node.look_soon()
                    if self.leader.leading and (bell is None or FOR_LEADER in bell.rung):
                        self.leader.look_now()
                        self.sweeps.wake()
        finally:
            self._retire(bell)

    def _drive_sweeps(self, stop: threading.Event) -> None:
        """While this agent leads, the pool's sweeps get their passes, on this thread: a slow
        tracking server must not hold up the scheduler's own passes and lease renewals."""
        while not stop.wait(_SLICE_S):
            if self.leader.leading:
                try:
                    self.sweeps.step(time.monotonic())
                except Exception:  # an agent never dies of a sweep: the next pass tries again
                    log.exception("sweep pass failed")

    def _sleep(self, seconds: float, stop: threading.Event, bell: Doorbell | None) -> bool:
        """Wait `seconds`, or until an attempt ends, the agent stops or (True) the doorbell rings."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if bell is not None:
                if bell.wait(min(left, _SLICE_S), self._wake):
                    return True
            else:
                self._wake.wait(min(left, _SLICE_S))
        self._wake.clear()
        return False

    def _take_results(self) -> bool:
        took = False
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return took
            took = True
            self.node.facts = {"endpoint": self._endpoint()}  # fresh ports for the next attempt
            self.node.finished(result)

    def _retire(self, bell: Doorbell | None) -> None:
        """Stop: the attempt reported, a last beat, a last pass when leading, the notice acknowledged."""
        self.executor.stop()
        # the attempt's last output sync (a checkpoint flushed on a notice) may take a while:
        # the node beats, and leads if it does, until its report is in
        deadline = time.monotonic() + self.config.timing.terminate_grace_s + STOP_PATIENCE_S
        next_node = 0.0
        while not self.executor.join(_SLICE_S):
            now = time.monotonic()
            if now > deadline:
                log.warning("the attempt did not report within %.0f s of the stop", STOP_PATIENCE_S)
                break
            if now >= next_node:
                next_node = now + self.node.step(now)
            if self.leader.leading:
                self.leader.step(now)
        self._take_results()
        now = time.monotonic()
        self.node.retire(now)
        if self.leader.leading:
            self.leader.next_pass = 0.0
            self.leader.step(now)  # conclude what this node just reported, before the lease lapses
        self.judge.close(FINISH_PATIENCE_S)
        if bell is not None:
            bell.close()
        if self.preemption is not None:
            # after the attempt was reported and requeued: now the VM may go
            self.preemption.acknowledge()
            self.preemption.stop()
        log.info("agent %s stopped", self.config.name)

    def _watch_evictions(self, stop: threading.Event) -> PreemptionWatch | None:
        url = self.config.scheduled_events_url
        if not url:
            return None
        node = node_resource_name(url, self.config.name)
        return PreemptionWatch(url, node, on_notice=lambda _notice: stop.set()).start()

    def _endpoint(self) -> str:
        return endpoint_text(self.facts.address, free_port(), tuple(free_port() for _ in range(EXTRA_PORTS)))

    # ----------------------------------------------------------------- callbacks
    def _on_state(self, what: str, meta: dict[str, str]) -> None:
        if what == "busy":
            log.info("assigned run %s attempt %s, rank %s of %s", meta.get("run"), meta.get("attempt"),
                     meta.get("rank"), meta.get("size"))  # fmt: skip
        elif what == "done":
            log.info(
                "run %s attempt %s done here: %s", meta.get("run"), meta.get("attempt"), meta.get("result")
            )
        elif what == "started" and meta.get("result") == "lost":
            log.warning("restarted: attempt %s of run %s, held before, is reported lost", meta.get("attempt"),
                        meta.get("run"))  # fmt: skip

    def attempt_ended(self, result: str) -> None:
        """The executor's callback (its own thread): handed to the loop, which beats at once."""
        self._results.put(result)
        self._wake.set()

    def _poison(self, submission: Submission, reason: str) -> None:
        body = submission.body if isinstance(submission.body, str) else json.dumps(submission.body)
        reason = f"not a job runner submission: {reason}"
        log.warning("submission set aside: %s", reason)
        quarantine(self.store, self.config.pool, body.encode(), reason)

    def _passed(self, report: PassReport) -> None:
        if report.assigned and self.config.doorbell is not None:
            # the nodes given an attempt read it now and start; the others sleep on
            ring(self.config.doorbell.parent, ASSIGNED, names=report.assigned_to)
        current = PoolReport(
            leader=self.config.name, waiting=report.waiting, nodes_short=report.nodes_short,
            demand_nodes=report.demand_nodes,
        )  # fmt: skip
        if not current.same(self._published):
            with contextlib.suppress(TrainstackError):
                publish_report(self.pool_store, current)
                self._published = current
        with contextlib.suppress(TrainstackError):  # what autoscale reads (a deployed pool)
            self.gauges.update(
                demand_nodes=report.demand_nodes, idle_nodes=report.idle_nodes, now=time.monotonic()
            )
        if report.assigned or report.concluded:
            log.info("pass: %d assigned, %d concluded, %d waiting", report.assigned, report.concluded,
                     len(report.waiting))  # fmt: skip

    def _concluded(self, doc: RunDoc) -> None:
        log.info("run %s: %s (attempt %d)", doc.id, doc.state, doc.attempt)
