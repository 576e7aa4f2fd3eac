"""A deterministic simulation of a pool: the real protocol (`jobrunner.scheduler.protocol`) and
decision code over a simulated store, network and clocks, in one process.

    result = simulate(SimConfig(agents=1000, jobs=10_000, seed=7, faults=Faults.drawn()))
    result.lost, result.doubled, result.stranded, result.makespan_s, result.requests

Everything random (the workload, each fault, lost answers) comes from the seed, and events at
the same moment run in the order they were scheduled, so a seed replays exactly. Faults:

- agent crashes (its processes die with it) and restarts as a new incarnation;
- lost answers: a write is applied but its caller sees an error;
- ETag conflicts: nodes and the leader write the same node blobs, and lost answers make
  callers retry writes that already landed;
- store outages: every call fails for a while;
- lease loss: the leader's lease is broken under it (its next renewal fails);
- clock skew: every agent's clock has its own offset and rate.

An oracle outside the protocol watches every process: `doubled` counts an attempt running
on more nodes than its gang, or two attempts of one run at once; `lost` counts runs that
end neither concluded nor findable (no pending blob, no queue message, no owner); `stranded`
counts runs not concluded when the simulation stops.
"""

from __future__ import annotations

import builtins
import heapq
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from jobrunner.errors import ConflictError, NotFoundError, StoreError
from jobrunner.scheduler.decide import quota_group
from jobrunner.scheduler.protocol import (
    LEADER_BLOB,
    NODES,
    PENDING,
    RUNS,
    TERMINAL,
    BlobEntry,
    Leader,
    Listing,
    NodeAgent,
    PassReport,
    ProtocolSettings,
    RunDoc,
    Submission,
    is_batch,
    submit,
)

LIST_PAGE = 5000  # blobs per listing request (Azure's maximum)
RENDEZVOUS_S = 600.0  # ranks that do not all start by then give up (torchrun's default join timeout)
PEER_LOST_S = 30.0  # a collective notices a dead peer
AUDIT_S = 300.0
_KINDS = {
    "_beat": "node_beats", "_start": "node_starts", "step": "lease", "_pass": "leader_listings",
    "_intake": "intake", "_take": "intake", "_read_run": "run_doc", "_write_run": "run_doc",
    "_look": "node_looks", "_assign": "assign", "_retry_delivery": "assign", "_drop_pending": "assign",
    "_conclude": "conclude", "_revoke": "revoke", "submit": "submit", "_batch_items": "leader_listings",
    "_delete_spent_batches": "intake",
}  # fmt: skip


@dataclass(frozen=True)
class Faults:
    crashes_per_agent: float = 0.0  # over the active part of the run
    lost_answer_p: float = 0.0
    outages: int = 0
    outage_s: tuple[float, float] = (10.0, 120.0)
    lease_breaks: int = 0
    skew_s: float = 0.0  # clock offsets up to this, rates off by up to 1 %

    @classmethod
    def drawn(cls) -> Faults:
        return cls(crashes_per_agent=0.1, lost_answer_p=0.01, outages=2, lease_breaks=3, skew_s=300.0)


@dataclass(frozen=True)
class SimConfig:
    agents: int
    jobs: int
    seed: int = 0
    faults: Faults = Faults()
    settings: ProtocolSettings = ProtocolSettings()
    max_nodes: int = 16
    quota_nodes: int | None = None  # each job in one of 3 experiments holding at most this many nodes


@dataclass
class SimResult:
    agents: int
    jobs: int
    seed: int
    makespan_s: float
    lower_bound_s: float
    requests: int
    lost: int = 0
    doubled: int = 0
    stranded: int = 0
    failed_past_cap: int = 0
    over_quota: int = 0  # starts that took an experiment past its quota (the oracle's count)
    most_held: int = 0  # the most nodes one experiment's processes held at once
    pass_s: list[float] = field(default_factory=list)
    requests_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def requests_by_kind_per_job(self) -> dict[str, float]:
        return {k: round(v / self.jobs, 2) for k, v in sorted(self.requests_by_kind.items())}

    @property
    def requests_per_job(self) -> float:
        return self.requests / self.jobs


# ---------------------------------------------------------------------------- workload
@dataclass(frozen=True)
class SimJob:
    doc: RunDoc
    duration_s: float


def workload(rng: random.Random, jobs: int, max_nodes: int, quota_nodes: int | None = None) -> list[SimJob]:
    """Jobs of 1 to `max_nodes` nodes, 1 minute to 1 hour, most with a timeout above their run;
    with `quota_nodes`, each in one of three experiments that hold at most that many nodes."""
    sizes = [n for n in (1, 2, 4, 8, 16) if n <= max_nodes]
    weights = [0.45, 0.2, 0.15, 0.12, 0.08][: len(sizes)]
    out = []
    for i in range(jobs):
        duration = math.exp(rng.uniform(math.log(60), math.log(3600)))
        timeout = None if rng.random() < 0.1 else round(duration * rng.uniform(1.2, 3.0))
        nodes = rng.choices(sizes, weights)[0]
        priority = 1 if rng.random() < 0.1 else 0
        doc = RunDoc(f"run-{i:05d}", nodes, timeout, priority)
        if quota_nodes is not None:
            experiment = f"exp-{rng.randrange(3)}"
            nodes = min(nodes, quota_nodes)
            doc = RunDoc(doc.id, nodes, timeout, priority, experiment=experiment,
                         quota=((quota_group("experiment", experiment), quota_nodes),))  # fmt: skip
        out.append(SimJob(doc, duration))
    return out


# ------------------------------------------------------------------------------ events
class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), fn))

    def run(self, until: float, done: Callable[[], bool]) -> None:
        while self._heap and not done():
            if self._heap[0][0] > until:
                break
            t, _, fn = heapq.heappop(self._heap)
            self.now = t
            fn()


# ------------------------------------------------------------------------------- store
class SimStore:
    """The store: blobs with ETags, metadata and last-modified times, one lease, one queue."""

    def __init__(self, clock: Clock, rng: random.Random, faults: Faults) -> None:
        self.clock, self.rng, self.faults = clock, rng, faults
        self.blobs: dict[str, dict[str, BlobEntry]] = {NODES: {}, PENDING: {}, RUNS: {}}
        self.data: dict[str, bytes] = {}
        self.queue: dict[str, list[object]] = {}  # id -> [body, inserted_at, visible_at, receipt]
        self.lease: tuple[str, float] | None = None
        self.lease_s = 60.0
        self.outages: list[tuple[float, float]] = []
        self.requests = 0
        self.by_kind: dict[str, int] = {}
        self._tags = itertools.count(1)

    def _enter(self) -> None:
        self.requests += 1
        caller = sys._getframe(2).f_code.co_name  # which protocol step asked: the cost breakdown
        kind = _KINDS.get(caller, caller)
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        now = self.clock.now
        if any(a <= now < b for a, b in self.outages):
            raise StoreError("store unreachable")

    def _answer_lost(self) -> None:
        if self.faults.lost_answer_p and self.rng.random() < self.faults.lost_answer_p:
            raise StoreError("answer lost")

    def _folder(self, name: str) -> dict[str, BlobEntry]:
        return self.blobs[name[: name.index("/") + 1]]

    def list(self, prefix: str) -> Listing:
        self._enter()
        entries = tuple(self.blobs[prefix].values())
        self.requests += max(0, math.ceil(len(entries) / LIST_PAGE) - 1)
        return Listing(self.clock.now, entries)

    def get(self, name: str) -> tuple[bytes, str, dict[str, str]]:
        self._enter()
        entry = self._folder(name).get(name)
        if entry is None:
            raise NotFoundError(f"no blob {name}")
        return self.data.get(name, b""), entry.etag, entry.metadata

    def put(
        self, name: str, data: bytes, metadata: dict[str, str], *, if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:  # fmt: skip
        self._enter()
        folder = self._folder(name)
        old = folder.get(name)
        if (if_absent and old is not None) or (
            if_match is not None and (old is None or old.etag != if_match)
        ):
            raise ConflictError(f"{name} changed")
        etag = str(next(self._tags))
        folder[name] = BlobEntry(name, etag, self.clock.now, dict(metadata))
        if data:
            self.data[name] = data
        self._answer_lost()
        return etag

    def delete(self, name: str, *, if_match: str | None = None) -> None:
        self._enter()
        folder = self._folder(name)
        old = folder.get(name)
        if old is None:
            raise NotFoundError(f"no blob {name}")
        if if_match is not None and old.etag != if_match:
            raise ConflictError(f"{name} changed")
        del folder[name]
        self.data.pop(name, None)
        self._answer_lost()

    def acquire_lease(self, name: str, duration_s: int, lease_id: str) -> bool:
        self._enter()
        assert name == LEADER_BLOB
        now = self.clock.now
        if self.lease is not None and self.lease[1] > now and self.lease[0] != lease_id:
            return False
        self.lease, self.lease_s = (lease_id, now + duration_s), float(duration_s)
        self._answer_lost()
        return True

    def renew_lease(self, name: str, lease_id: str) -> None:
        self._enter()
        now = self.clock.now
        if self.lease is None or self.lease[0] != lease_id or self.lease[1] <= now:
            raise StoreError("lease lost")
        self.lease = (lease_id, now + self.lease_s)
        self._answer_lost()

    def break_lease(self) -> None:
        self.lease = None

    def send(self, body: dict[str, object]) -> None:
        self._enter()
        message_id = f"m{next(self._tags)}"
        self.queue[message_id] = [body, self.clock.now, self.clock.now, ""]

    def receive(self, max_messages: int) -> builtins.list[Submission]:
        self._enter()
        now = self.clock.now
        out = []
        for message_id, m in self.queue.items():
            if float(m[2]) <= now:  # type: ignore[arg-type]
                m[2], m[3] = now + 60.0, f"r{next(self._tags)}"
                out.append(Submission(message_id, str(m[3]), m[0], float(m[1])))  # type: ignore[arg-type]
                if len(out) == max_messages:
                    break
        self._answer_lost()
        return out

    def delete_message(self, submission: Submission) -> None:
        self._enter()
        m = self.queue.get(submission.message_id)
        if m is not None and m[3] == submission.receipt:
            del self.queue[submission.message_id]
        self._answer_lost()


# --------------------------------------------------------------------- processes (oracle)
class Oracle:
    """Watches every simulated process; knows each job's true duration."""

    def __init__(
        self, clock: Clock, durations: dict[str, float], quotas: dict[str, tuple[str, int]] | None = None
    ) -> None:
        self.clock, self.durations = clock, durations
        self.live: dict[tuple[str, int], dict[int, SimExecutor]] = {}  # attempt -> rank -> process
        self.first_start: dict[tuple[str, int], float] = {}
        self.doubled = 0
        self.quotas = quotas or {}  # run -> (its experiment's group, the most nodes it may hold)
        self.over_quota = 0
        self.most_held = 0

    def started(self, run: str, attempt: int, rank: int, size: int, proc: SimExecutor) -> None:
        key = (run, attempt)
        ranks = self.live.setdefault(key, {})
        others = [k for k, r in self.live.items() if k[0] == run and k != key and r]
        if rank in ranks or others:
            self.doubled += 1
        ranks[rank] = proc
        if run in self.quotas:
            group, limit = self.quotas[run]
            held = sum(len(r) for k, r in self.live.items() if self.quotas.get(k[0], ("",))[0] == group)
            self.most_held = max(self.most_held, held)
            self.over_quota += held > limit
        if len(ranks) == 1:
            self.first_start[key] = self.clock.now
            self.clock.at(self.clock.now + RENDEZVOUS_S, lambda: self._rendezvous_timeout(key, size))
        if len(ranks) == size:
            end = self.clock.now + self.durations[run]
            self.clock.at(end, lambda: self._end(key, "ok"))

    def _rendezvous_timeout(self, key: tuple[str, int], size: int) -> None:
        ranks = self.live.get(key, {})
        if ranks and len(ranks) < size and all(not p.gang_complete for p in ranks.values()):
            self._end(key, "peer")

    def stopped(self, run: str, attempt: int, rank: int, proc: SimExecutor) -> None:
        key = (run, attempt)
        ranks = self.live.get(key, {})
        if ranks.get(rank) is proc:
            del ranks[rank]
            if ranks:  # the collective breaks: the others fail soon
                self.clock.at(self.clock.now + PEER_LOST_S, lambda: self._end(key, "peer"))

    def _end(self, key: tuple[str, int], result: str) -> None:
        ranks = self.live.pop(key, {})
        for proc in ranks.values():
            proc.ended(result)

    def mark_complete(self, key: tuple[str, int]) -> None:
        for proc in self.live.get(key, {}).values():
            proc.gang_complete = True


class SimExecutor:
    """One node's process slot (the `Executor` of `NodeAgent`)."""

    def __init__(self, oracle: Oracle, wake: Callable[[], None]) -> None:
        self.oracle, self.wake = oracle, wake
        self.current: tuple[str, int, int] | None = None
        self.done: Callable[[str], None] | None = None
        self.gang_complete = False

    def start(
        self, run: str, attempt: int, rank: int, size: int, done: Callable[[str], None], doc: bytes = b""
    ) -> None:
        self.current, self.done, self.gang_complete = (run, attempt, rank), done, False
        self.oracle.started(run, attempt, rank, size, self)
        if len(self.oracle.live.get((run, attempt), {})) == size:
            self.oracle.mark_complete((run, attempt))

    def stop(self) -> None:
        if self.current is not None:
            run, attempt, rank = self.current
            self.current = None
            self.oracle.stopped(run, attempt, rank, self)

    def ended(self, result: str) -> None:
        if self.current is None:
            return
        self.current = None
        if self.done is not None:
            self.done(result)
        self.wake()


# -------------------------------------------------------------------------------- agents
class SimAgent:
    def __init__(self, world: World, index: int) -> None:
        self.world, self.name = world, f"vm-{index:04d}"
        rng = world.rng
        self.offset = rng.uniform(-world.config.faults.skew_s, world.config.faults.skew_s)
        self.rate = 1.0 + (rng.uniform(-0.01, 0.01) if world.config.faults.skew_s else 0.0)
        self.incarnations = 0
        self.alive = False
        self.generation = 0
        self.boot()

    def local(self) -> float:
        return self.world.clock.now * self.rate + self.offset

    def boot(self) -> None:
        self.incarnations += 1
        self.alive = True
        self.executor = SimExecutor(self.world.oracle, self.wake_now)
        self.next_leader = self.local()
        settings = self.world.config.settings
        self.node = NodeAgent(
            self.world.store, self.name, f"{self.name}#{self.incarnations}", self.executor, settings
        )
        self.leader = Leader(
            self.world.store, self.node.incarnation, settings, clock=time.process_time,
            on_pass=self.world.passed, on_conclude=self.world.concluded,
        )  # fmt: skip
        self.wake_now()

    def crash(self) -> None:
        if not self.alive:
            return
        self.alive = False
        self.generation += 1
        self.executor.stop()

    def wake_now(self) -> None:
        """Step the node now (its process ended, or it booted)."""
        self.next_node = self.local()
        self.generation += 1
        generation = self.generation
        self.world.clock.at(self.world.clock.now, lambda: self._wake(generation))

    def _wake(self, generation: int) -> None:
        """Step the node and the leader each on its own timer (local clock)."""
        if not self.alive or generation != self.generation:
            return
        local = self.local() + 1e-3  # a wake-up computed through the agent's clock rate may land a hair early
        if local >= self.next_node:
            self.next_node = local + self.node.step(local)
        if local >= self.next_leader:
            was_leading = self.leader.leading
            started = time.process_time()
            self.next_leader = local + self.leader.step(local, idle=self.node.may_lead(local))
            if was_leading and self.leader.leading and self.world.last_pass is not None:
                self.world.pass_s.append(time.process_time() - started)
            self.world.last_pass = None
        self.generation += 1
        generation = self.generation
        delay = max(2e-3, min(self.next_node, self.next_leader) - local)
        self.world.clock.at(self.world.clock.now + delay / self.rate, lambda: self._wake(generation))


class World:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.clock = Clock()
        self.store = SimStore(self.clock, random.Random(config.seed * 7919 + 1), config.faults)
        self.jobs = workload(
            random.Random(config.seed * 104729 + 2), config.jobs, min(config.max_nodes, config.agents),
            config.quota_nodes,
        )  # fmt: skip
        quotas = {j.doc.id: j.doc.quota[0] for j in self.jobs if j.doc.quota}
        self.oracle = Oracle(self.clock, {j.doc.id: j.duration_s for j in self.jobs}, quotas)
        self.open = {j.doc.id for j in self.jobs}
        self.failed_past_cap = 0
        self.finished_at = 0.0
        self.pass_s: list[float] = []
        self.last_pass: PassReport | None = None
        for job in self.jobs:
            self._submit(job.doc)
        self.agents = [SimAgent(self, i) for i in range(config.agents)]

    def _submit(self, doc: RunDoc) -> None:
        """The submitter retries what the store did not answer (`jobrunner submit` does)."""
        for _ in range(20):
            try:
                submit(self.store, doc)
                return
            except StoreError:
                continue
        raise AssertionError(f"submit of {doc.id} failed 20 times")

    def passed(self, report: PassReport) -> None:
        self.last_pass = report

    def concluded(self, doc: RunDoc) -> None:
        if doc.state in TERMINAL and doc.id in self.open:
            self.open.discard(doc.id)
            self.finished_at = self.clock.now
            if doc.state == "failed":
                self.failed_past_cap += 1

    def audit(self) -> None:
        """Read the open runs' documents straight from the store (no request counted): a
        conclusion whose answer was lost reached the store without its callback."""
        for run in sorted(self.open):
            data = self.store.data.get(RUNS + run)
            doc = None if data is None else RunDoc.decode(data)  # none yet: never assigned
            if doc is not None and doc.state in TERMINAL:
                self.concluded(doc)
        if self.open:
            self.clock.at(self.clock.now + AUDIT_S, self.audit)

    def lower_bound(self) -> float:
        work = sum(j.duration_s * j.doc.nodes for j in self.jobs)
        return max(work / self.config.agents, max(j.duration_s for j in self.jobs))

    def schedule_faults(self, active_s: float) -> None:
        f, rng = self.config.faults, self.rng
        for _ in range(round(f.crashes_per_agent * self.config.agents)):
            agent = rng.choice(self.agents)
            at = rng.uniform(0, active_s)
            back = at + rng.uniform(30.0, 900.0)
            self.clock.at(at, agent.crash)
            self.clock.at(back, partial(_boot_if_down, agent))
        for _ in range(f.outages):
            start = rng.uniform(0, active_s)
            self.store.outages.append((start, start + rng.uniform(*f.outage_s)))
        for _ in range(f.lease_breaks):
            self.clock.at(rng.uniform(0, active_s), self.store.break_lease)

    def findable(self, run: str) -> bool:
        if PENDING + run in self.store.blobs[PENDING]:
            return True
        for name in self.store.blobs[PENDING]:
            if is_batch(name) and any(i["id"] == run for i in json.loads(self.store.data.get(name, b"[]"))):
                return True
        if any(m[0]["id"] == run for m in self.store.queue.values()):  # type: ignore[index]
            return True
        return any(e.metadata.get("run") == run for e in self.store.blobs[NODES].values())


def simulate(config: SimConfig) -> SimResult:
    """Run one seed to the end (every run concluded) or to a generous horizon."""
    world = World(config)
    bound = world.lower_bound()
    world.schedule_faults(active_s=bound * 0.7)
    world.clock.at(AUDIT_S, world.audit)
    world.clock.run(until=bound * 4 + 20_000.0, done=lambda: not world.open)
    stranded = sorted(world.open)
    return SimResult(
        agents=config.agents, jobs=config.jobs, seed=config.seed, makespan_s=world.finished_at,
        lower_bound_s=bound, requests=world.store.requests, lost=sum(not world.findable(r) for r in stranded),
        doubled=world.oracle.doubled, stranded=len(stranded), failed_past_cap=world.failed_past_cap,
        over_quota=world.oracle.over_quota, most_held=world.oracle.most_held, pass_s=world.pass_s,
        requests_by_kind=dict(world.store.by_kind),
    )  # fmt: skip


def _boot_if_down(agent: SimAgent) -> None:
    if not agent.alive:
        agent.boot()
