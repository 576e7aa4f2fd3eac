"""The pool protocol: one leader assigns, every node executes what is assigned to it.

    leader = Leader(store, "vm-0", settings)    # any node may become it: a blob lease decides
    node = NodeAgent(store, "vm-0", incarnation, executor, settings)
    delay = node.step(local_now)                # beat, take an assignment, report; again after `delay`
    delay = leader.step(local_now)              # renew the lease, take submissions, decide, assign

Everything lives in a few blobs of one container (`PoolStore`), and the leader learns the
whole pool from two listings per pass, whatever its size:

- `leader`: the lease blob. The holder is the pool's one scheduler; it renews every
  `renew_s`, well inside `lease_s`, and stops acting the moment a renewal fails, before the
  lease can pass to anyone else. Nodes try for it only while idle and only when no leader
  has written on their blob for `leader_try_s` (then at doubling gaps): while a leader
  keeps them busy nobody tries, and when every node is busy there is nothing to assign.
- `nodes/<name>`: a node's blob, written by the node under its own ETag when it has news
  (a new incarnation, an attempt's result) and for liveness every `beat_busy_s`. Its
  metadata say everything the leader needs: the node's incarnation, its state (idle,
  assigned, busy, done, revoke), the attempt it holds (run, attempt, rank, gang size, latest
  end) and, once done, its result. Its last-modified time (the store's clock) is its
  heartbeat. The leader assigns by writing the same blob under the ETag it listed, the run's
  document (owners, endpoints) as its body, so that the node reads nothing more to start; an idle
  node reads its blob (one request) `beat_idle_s` after it reported, then at doubling gaps
  up to `idle_max_s`, and starts what it finds assigned to its incarnation without writing:
  the blob already says the attempt is its own. A busy node makes no request between its
  liveness writes. An attempt therefore costs each of its nodes three requests (the
  assignment, the read that finds it, the result) plus a liveness write per `beat_busy_s`.
- the pool queue: a submission is one message, the whole of what the leader needs (run,
  nodes, timeout, priority, quota groups, the retry policy its settling applies); its
  insertion time is the store's clock.
- `pending/~<time>-<leader>-<n>`: an intake batch. The leader takes in what the queue holds
  (up to `intake_rounds` receives of `intake_batch`) as one blob listing each run as
  submitted with its insertion time, then deletes the messages: first attempts cost one
  blob write per batch, not per run, and a batch is deleted once none of its runs is pending
  there any more.
- `pending/<run>`: a requeued attempt (metadata: attempt, nodes, timeout, priority, quota
  groups and the store time it was queued at), or a client's cancel mark; it wins over the
  run's place in a batch. The leader lists the pending blobs every `pending_list_s` (a
  cancel mark shows then) and keeps them in between from its own writes, in the decision's
  order (`PendingIndex`).
- `runs/<run>`: the run's document (`RunDoc`), created by the leader when it first assigns
  (or ends) the run and changed only under its ETag: the single truth of which attempt is
  current, who owns it, and how the run ended. The leader keeps the ETag of its own last
  write, so it writes without reading first; a write under a stale ETag (or a create that
  finds the document there) fails, and the next pass reads the document afresh.

Timing, and what it trades (`ProtocolSettings`): a silent node is found lost after
`stale_after_s`, an hour with the defaults, because liveness writes are rare (every 30
minutes); a gang's collective finds a dead peer within seconds and ends the attempt, a
restarted agent reports its predecessor's attempt at once, and a node that stops or is
preempted says so, so the hour is for nodes that vanish without a word. The leader passes
every `pass_s` while anything is queued or running (`pass_max_s` in a pool with nothing to
do), and a node that reported looks `beat_idle_s` later, just past the next pass, so that
the look finds the assignment made there; a node idle for a while finds one up to
`idle_max_s` late. After an empty receive the leader asks the queue again at its next pass
while its decision leaves nodes idle, and otherwise every `intake_max_s`: a submission to
a full pool is seen within that. A local pool's doorbell
(`jobrunner.node.doorbell`) makes the reads, passes and receives happen at once.

The state machine of one attempt, and what a crash at each point leaves (every write is
idempotent, so "repeated" means the next pass or the restarted process writes it again):

    submit: queue message (one write: nothing to crash between)
    intake: pending/~<batch> (the runs as submitted, a new name) ──► delete each message
         crash between: the messages come back and a later batch holds them again; the
         index takes each run in once (its earliest batch), and a batch left with no run
         pending is deleted
    assign: runs/<id> active, owners + incarnations (the attempt, written once: created, or
            under its ETag) ──► nodes/<n> assigned, per owner ──► forget the pending entry
            (its own blob deleted; a batch deleted when spent; kept if no node took it)
         crash after the run write: the pending entry is still listed; the next pass finds
         the run active at that attempt with owners that never heard of it, and requeues it
         crash after some deliveries: fewer owners than the gang name the attempt: requeued
    execute: node reads the assignment ──► process ──► node done (result)
         node crash: a restart is a new incarnation; it reports the old attempt lost and
         never re-enters it; a node that stays silent past `stale_after_s` is lost
         node cut off from the store: it stops its processes after `fence_s` without a
         successful beat, before the leader can count it lost (`fence_s` < `stale_after_s`)
    conclude (leader, from the listing): pending/<id> for attempt+1 (if requeued)
            ──► runs/<id> queued attempt+1, or terminal (ETag) ──► revoke the live owners
         crash before the run write: the owners still name the attempt and it is concluded
         again; or they moved on, and the pass that finds pending/<id> one attempt ahead of
         an active run that no node runs any more finishes the requeue
         crash after it: pending/<id> names the next attempt; the revokes are repeated

A run is queued and findable (a queue message, an intake batch or a pending blob) or
concluded at every point. A pending attempt is not assigned while any node that may still run an older attempt
of that run names it, so two attempts of a run never run at once; a node executes only an
assignment made for its own incarnation, so no attempt runs on more nodes than assigned.

Liveness counts only while the leader's own store calls have been steady for
`stale_after_s`: after an outage every heartbeat is old, and nobody is declared lost on that
evidence. Lost nodes, preemption and broken deliveries requeue without spending the retry
budget, up to `max_free_requeues`; past it the run fails with its history.

Failure modes: StoreError from any store call is caught here and retried on the next step;
nothing in this module raises to its caller.
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from jobrunner.errors import ConflictError, NotFoundError, StoreError
from jobrunner.scheduler.decide import PoolState, QueuedJob, RunningJob, decide, job_order

LEADER_BLOB = "leader"
NODES = "nodes/"
PENDING = "pending/"
BATCH_MARK = "~"  # pending/~<time>-<leader>-<n>: an intake batch (run ids begin with a letter or digit)
RUNS = "runs/"
ACTIVE = "active"
TERMINAL = ("succeeded", "failed", "canceled")
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MAX_GANG = 10_000
QUOTA_GROUP = re.compile(r"(experiment|user):[^\x00-\x1f]{1,255}\Z")


# ---------------------------------------------------------------------------- the store
@dataclass(frozen=True)
class BlobEntry:
    name: str
    etag: str
    last_modified: float  # the store's clock, seconds
    metadata: dict[str, str]


@dataclass(frozen=True)
class Listing:
    at: float  # the store's clock when it answered (the response's Date)
    entries: tuple[BlobEntry, ...]


@dataclass(frozen=True)
class Submission:
    message_id: str
    receipt: str
    body: object  # the JSON it carried (the raw text when it was not JSON)
    inserted_at: float  # the store's clock when the message arrived


class PoolStore(Protocol):
    """The few store calls the protocol makes. StoreError on trouble; ConflictError when an
    ETag or if-absent condition fails; NotFoundError for a missing blob."""

    def list(self, prefix: str) -> Listing: ...
    def get(self, name: str) -> tuple[bytes, str, dict[str, str]]: ...
    def put(
        self, name: str, data: bytes, metadata: dict[str, str], *, if_match: str | None = None,
        if_absent: bool = False,
    ) -> str: ...  # fmt: skip
    def delete(self, name: str, *, if_match: str | None = None) -> None: ...
    def acquire_lease(self, name: str, duration_s: int, lease_id: str) -> bool: ...
    def renew_lease(self, name: str, lease_id: str) -> None: ...
    def send(self, body: dict[str, object]) -> None: ...
    def receive(self, max_messages: int) -> builtins.list[Submission]: ...
    def delete_message(self, submission: Submission) -> None: ...


@dataclass(frozen=True)
class ProtocolSettings:
    """Intervals of the protocol, in seconds (one place; the agent settings hold these).

    A node writes its blob only when something changed (it started, an attempt ended) and,
    for liveness, every `beat_busy_s` whatever its state; between writes an idle node looks
    at its blob (one read) `beat_idle_s` after it became idle, then at doubling gaps up to
    `idle_max_s`, and a busy node makes no request at all. The price is how fast a silent
    node is found lost: after `stale_after_s` (an hour), where a gang's own collective finds
    a dead peer in seconds and ends the attempt. The leader passes every `pass_s` while
    anything is queued or running, and every `pass_max_s` when nothing is.
    """

    beat_idle_s: float = 32.0  # an idle node's first look after it reported: past the leader's next pass
    idle_max_s: float = 480.0  # the longest gap between an idle node's looks
    beat_busy_s: float = 1800.0  # a node's liveness write, busy or idle
    stale_after_s: float = 3600.0  # silent this long: lost
    fence_s: float = 2700.0  # a node without a successful beat this long stops its attempt
    lease_s: int = 60
    renew_s: float = 45.0  # a renewal that fails still leaves 15 s to stop acting
    pass_s: float = 30.0  # while anything is queued or running
    pass_max_s: float = 60.0  # ... and this often in a pool with nothing to do
    # False: back off as soon as a pass finds nothing to do, running work or not (a pool
    # whose doorbell rings the leader when a node reports: local pools)
    steady_passes: bool = True
    pending_list_s: float = 300.0  # the leader lists pending attempts (for cancel marks) this often
    intake_max_s: float = 240.0  # the longest gap between receives while queued work is known
    leader_try_s: float = 240.0  # an idle node that has not heard from a leader this long tries
    leader_try_max_s: float = 960.0  # ... and again at doubling gaps up to this
    max_free_requeues: int = 5
    intake_batch: int = 32
    intake_rounds: int = 8  # receives per pass while full batches come back
    delivery_tries: int = 3  # an assignment that meets the node's own write, while it stays idle


# ------------------------------------------------------------------------- the run doc
@dataclass(frozen=True)
class RunDoc:
    """`runs/<id>`: which attempt is current, who owns it, how the run ended."""

    id: str
    nodes: int
    timeout_s: float | None
    priority: int = 0
    state: str = "queued"
    attempt: int = 1
    owners: tuple[tuple[str, str], ...] = ()  # (node, incarnation), rank order
    free_requeues: int = 0
    history: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()  # what each owner offered its gang (address, ports), rank order
    experiment: str = ""  # where the run's own files live (`runs/<experiment>/<id>/`), when known
    quota: tuple[tuple[str, int], ...] = ()  # (group, the most nodes it may hold): `decide`'s rule 6
    # the job's retry policy (max_attempts, no_retry_exit_codes), as submitted; None: not said
    # (a message from an older client), then the judge reads it from the run's spec
    retry: tuple[int, tuple[int, ...]] | None = None

    def encode(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def decode(cls, data: bytes) -> RunDoc:
        raw = json.loads(data)
        raw["owners"] = tuple(tuple(o) for o in raw["owners"])
        raw["history"] = tuple(raw["history"])
        raw["endpoints"] = tuple(raw.get("endpoints", ()))
        raw["quota"] = tuple((str(g), int(n)) for g, n in raw.get("quota", ()))
        retry = raw.get("retry")
        raw["retry"] = None if retry is None else (int(retry[0]), tuple(int(c) for c in retry[1]))
        return cls(**raw)


def parse_submission(body: object) -> RunDoc | str:
    """A submission's body as the run it queues, or why it is refused (a message that is not
    one of ours, or fields out of range: it goes to the poison queue, never to a node)."""
    if not isinstance(body, dict):
        return "not a JSON object"
    run, nodes, timeout, priority = (
        body.get("id"),
        body.get("nodes"),
        body.get("timeout_s"),
        body.get("priority", 0),
    )
    if not isinstance(run, str) or not RUN_ID.match(run):
        return "field `id`: not a run id (letters, digits, `.`, `_`, `-`, at most 200)"
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_GANG:
        return f"field `nodes`: not a node count from 1 to {MAX_GANG}"
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        return "field `timeout_s`: not a positive number of seconds"
    if isinstance(priority, bool) or not isinstance(priority, int) or not -1000 <= priority <= 1000:
        return "field `priority`: not a whole number from -1000 to 1000"
    experiment = body.get("experiment", "")
    if not isinstance(experiment, str) or len(experiment) > 255:
        return "field `experiment`: not an experiment name"
    quota = _parse_quota(body.get("quota", {}))
    if isinstance(quota, str):
        return quota
    retry = _parse_retry(body.get("retry"))
    if isinstance(retry, str):
        return retry
    return RunDoc(
        run, nodes, None if timeout is None else float(timeout), priority, experiment=experiment, quota=quota,
        retry=retry,
    )  # fmt: skip


def _parse_retry(value: object) -> tuple[int, tuple[int, ...]] | None | str:
    """The submission's retry policy, `{"max_attempts": n, "no_retry_exit_codes": [...]}`."""
    if value is None:
        return None
    why = "field `retry`: not a retry policy (`max_attempts` 1 to 100, `no_retry_exit_codes` a list of codes)"
    if not isinstance(value, dict):
        return why
    attempts, codes = value.get("max_attempts"), value.get("no_retry_exit_codes", [])
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
        return why
    if not isinstance(codes, list) or len(codes) > 256:
        return why
    if any(isinstance(c, bool) or not isinstance(c, int) or not -(2**31) <= c < 2**32 for c in codes):
        return why
    return attempts, tuple(codes)


def _parse_quota(value: object) -> tuple[tuple[str, int], ...] | str:
    why = "field `quota`: not a map of at most 4 groups (`experiment:<name>`, `user:<name>`) to node counts"
    if not isinstance(value, dict) or len(value) > 4:
        return why
    out = []
    for group, limit in value.items():
        if not isinstance(group, str) or not QUOTA_GROUP.match(group):
            return why
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_GANG:
            return why
        out.append((group, limit))
    return tuple(sorted(out))


def submission_body(doc: RunDoc) -> dict[str, object]:
    body: dict[str, object] = {
        "id": doc.id, "nodes": doc.nodes, "timeout_s": doc.timeout_s, "priority": doc.priority,
        "experiment": doc.experiment, "quota": dict(doc.quota),
    }  # fmt: skip
    if doc.retry is not None:
        body["retry"] = {"max_attempts": doc.retry[0], "no_retry_exit_codes": list(doc.retry[1])}
    return body


def submit(store: PoolStore, doc: RunDoc) -> None:
    """Queue the run: one message, which says everything the leader needs (see the state
    machine; the run's document is written by the leader when it first assigns or ends the
    run). StoreError on trouble; calling again after one is safe: a second message for the
    same run is taken in once."""
    store.send(submission_body(doc))


def cancel_queued(store: PoolStore, run: str) -> None:
    """Mark the run's pending attempt canceled (creating the mark when its submission is not
    taken in yet): the leader's next listing drops it, even a gang that could never start.
    StoreError on trouble; a run that is past queued ignores the mark."""
    for _ in range(5):
        try:
            _, etag, meta = store.get(PENDING + run)
        except NotFoundError:
            with contextlib.suppress(ConflictError):  # taken in meanwhile: mark that one
                store.put(PENDING + run, b"", {"canceled": "1"}, if_absent=True)
                return
            continue
        if meta.get("canceled"):
            return
        with contextlib.suppress(ConflictError):
            store.put(PENDING + run, b"", {**meta, "canceled": "1"}, if_match=etag)
            return
    raise StoreError(f"the pending attempt of {run} is changing too fast to cancel")


def _pending_metadata(doc: RunDoc, attempt: int, submitted_at: float) -> dict[str, str]:
    timeout = "" if doc.timeout_s is None else repr(doc.timeout_s)
    return {"attempt": str(attempt), "nodes": str(doc.nodes), "timeout": timeout,
            "priority": str(doc.priority), "submitted_at": repr(submitted_at),
            **quota_metadata(doc.quota)}  # fmt: skip


def quota_metadata(quota: tuple[tuple[str, int], ...]) -> dict[str, str]:
    """Quota groups as one metadata value (ASCII, as blob metadata must be: `g1=4,g2=8`), and no
    key at all without a quota (an empty value reads back as none)."""
    if not quota:
        return {}
    return {"quota": ",".join(f"{urllib.parse.quote(g, safe='')}={n}" for g, n in quota)}


def decode_quota(text: str | None) -> tuple[tuple[str, int], ...]:
    out = []
    for part in filter(None, (text or "").split(",")):
        group, _, limit = part.rpartition("=")
        out.append((urllib.parse.unquote(group), int(limit)))
    return tuple(out)


# ---------------------------------------------------------------------------- a node
class Executor(Protocol):
    """What runs an attempt's processes on a node (`jobrunner.node.attempt` on a real node)."""

    def start(
        self, run: str, attempt: int, rank: int, size: int, done: Callable[[str], None], doc: bytes = b""
    ) -> None:
        """Run rank `rank` of `attempt`; `doc` is the run's document as the leader assigned it
        (`RunDoc.encode`, written with the assignment), or empty when it was not."""

    def stop(self) -> None: ...


@dataclass
class NodeAgent:
    """One node: beats, executes the attempt assigned to its incarnation, reports its result."""

    store: PoolStore
    name: str
    incarnation: str
    executor: Executor
    settings: ProtocolSettings = field(default_factory=ProtocolSettings)
    meta: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    started: bool = False
    last_ok: float | None = None  # when this node last wrote its blob (its liveness)
    on_state: Callable[[str, dict[str, str]], None] = lambda _what, _meta: None
    facts: dict[str, str] = field(default_factory=dict)  # written with every beat (its endpoint)
    # the time now, read again after store calls that may have waited out retries (None: a
    # step's `now` stands for its whole step, as in the simulation)
    clock: Callable[[], float] | None = None
    dirty: bool = True  # something changed that the leader must read: write at the next step
    idle_since: float | None = None
    look_gap: float = 0.0
    next_look: float = 0.0
    heard_at: float | None = None  # when this node last read a write of a leader

    @property
    def blob(self) -> str:
        return NODES + self.name

    @property
    def state(self) -> str:
        return self.meta.get("state", "idle")

    @property
    def idle(self) -> bool:
        return self.started and self.state in ("idle", "done")

    def may_lead(self, now: float) -> bool:
        """Whether to try for the leader's lease now: only while idle and only when no leader
        has been heard from for `leader_try_s` (a node that never heard of one tries at once).
        Nodes that a leader keeps busy never try, so the tries cost nothing while it leads."""
        if not self.idle:
            return False
        if self.heard_at is None:
            return True
        quiet_since = max(self.heard_at, self.idle_since if self.idle_since is not None else now)
        return now - quiet_since >= self.settings.leader_try_s

    def step(self, now: float) -> float:
        """One beat or one look, or nothing when neither is due; the seconds to the next step."""
        try:
            if not self.started:
                self._start()
            if self.dirty or self._beat_due(now):
                self._beat(now)
            elif self.idle and now >= self.next_look:
                self._look(now)
        except StoreError:
            # cut off: past the fence the attempt stops, before the leader may count this node
            # lost and run the attempt again elsewhere
            later = self.clock() if self.clock else now
            if (
                self.state == "busy"
                and self.last_ok is not None
                and later - self.last_ok > self.settings.fence_s
            ):
                self.executor.stop()
                self._finish("fenced")
            return min(self.settings.beat_idle_s, 5.0)
        return self._delay(now)

    def _beat_due(self, now: float) -> bool:
        return self.last_ok is None or now - self.last_ok >= self.settings.beat_busy_s

    def _delay(self, now: float) -> float:
        until_beat = 0.0 if self.last_ok is None else self.last_ok + self.settings.beat_busy_s - now
        if self.dirty:
            return 0.0
        if self.idle:
            return max(1e-3, min(until_beat, self.next_look - now))
        return max(1e-3, until_beat)

    def _became_idle(self, now: float) -> None:
        self.idle_since = now
        self.look_gap = self.settings.beat_idle_s
        self.next_look = now + self.look_gap

    def look_soon(self) -> None:
        """Look at the blob at the next step (a doorbell rang: an assignment may be there)."""
        self.next_look = 0.0

    def _look(self, now: float) -> None:
        """Read this node's blob (one request): an assignment shows here; nothing else changes."""
        body, etag, written = self.store.get(self.blob)
        if etag != self.etag:
            self.etag = etag
            self._read_leader(written, now, body)
        if self.idle:
            self.look_gap = min(self.settings.idle_max_s, max(self.look_gap, 1e-3) * 2)
            self.next_look = now + self.look_gap

    def retire(self, now: float) -> None:
        """The agent stops serving: one last beat says so (an attempt still held is lost)."""
        if self.state in ("assigned", "busy"):
            self.meta = {**self.meta, "result": "lost"}
        self.meta = {**self.meta, "state": "stopped"}
        with contextlib.suppress(StoreError):
            self._beat(now)

    def finished(self, result: str) -> None:
        """The executor's callback: the attempt's processes on this node ended with `result`."""
        if self.state == "busy":
            self._finish(result)

    def _start(self) -> None:
        """A new incarnation: an attempt the previous one held is reported lost, never re-entered."""
        try:
            _, self.etag, old = self.store.get(self.blob)
        except NotFoundError:
            self.etag, old = None, {}
        self.meta = {"inc": self.incarnation, "state": "idle"}
        if old.get("state") in ("assigned", "busy", "revoke") and old.get("inc") != self.incarnation:
            self.meta = {**_attempt_of(old), "inc": self.incarnation, "state": "done", "result": "lost"}
        elif old.get("state") in ("done", "stopped") and "result" in old:
            self.meta = {
                **_attempt_of(old),
                "inc": self.incarnation,
                "state": "done",
                "result": old["result"],
            }
        self.started = True
        self.dirty = True
        self.on_state("started", self.meta)

    def _finish(self, result: str) -> None:
        self.meta = {**self.meta, "state": "done", "result": result}
        self.dirty = True
        self.on_state("done", self.meta)

    def _beat(self, now: float) -> None:
        news = self.dirty
        for _ in range(3):
            meta = {**self.meta, **self.facts, "by": "node"}
            try:
                if self.etag is None:
                    self.etag = self.store.put(self.blob, b"", meta, if_absent=True)
                else:
                    self.etag = self.store.put(self.blob, b"", meta, if_match=self.etag)
                self.last_ok = self.clock() if self.clock else now
                self.dirty = False
                if self.idle and (news or self.idle_since is None):
                    self._became_idle(now)  # it reported: an assignment may follow soon
                return
            except ConflictError:
                body, self.etag, written = self.store.get(self.blob)
                self._read_leader(written, now, body)
        raise StoreError("node blob changing too fast")

    def _read_leader(self, written: dict[str, str], now: float, body: bytes = b"") -> None:
        """React to what the leader wrote on this node's blob (ignored for another incarnation).
        Taking an assignment writes nothing: the blob already says the attempt is this node's,
        and the next write (a liveness beat, or the result) says the rest."""
        if written.get("by") != "leader" or written.get("inc") != self.incarnation:
            return
        self.heard_at = now
        if written.get("state") == "assigned" and self.idle:
            self.meta = {**_attempt_of(written), "inc": self.incarnation, "state": "busy"}
            self.idle_since = None
            self.on_state("busy", self.meta)
            self.executor.start(
                written["run"], int(written["attempt"]), int(written["rank"]), int(written["size"]),
                self.finished, body,
            )  # fmt: skip
        elif written.get("state") == "revoke" and self.state == "busy" and _same_attempt(written, self.meta):
            self.executor.stop()
            self._finish("revoked")


def _attempt_of(meta: dict[str, str]) -> dict[str, str]:
    return {k: meta[k] for k in ("run", "attempt", "rank", "size", "ends_by", "quota") if k in meta}


def _same_attempt(a: dict[str, str], b: dict[str, str]) -> bool:
    return a.get("run") == b.get("run") and a.get("attempt") == b.get("attempt")


# -------------------------------------------------------------------------- the leader
@dataclass
class PassReport:
    """What one leader pass did (for logs, `jobrunner pool status` and the simulation)."""

    at: float
    assigned: int = 0
    assigned_to: tuple[str, ...] = ()  # the nodes given an attempt by this pass
    concluded: int = 0
    waiting: tuple[str, ...] = ()
    nodes_short: int = 0
    demand_nodes: int = 0  # nodes the queued work wants beyond the idle ones: what autoscale adds
    idle_nodes: int = 0  # live nodes left idle by this pass: what autoscale may remove
    decide_s: float = 0.0


@dataclass
class Leader:
    """The pool's scheduler while it holds the lease (see the module docstring)."""

    store: PoolStore
    name: str
    settings: ProtocolSettings = field(default_factory=ProtocolSettings)
    lease_id: str | None = None
    renewed_at: float = 0.0
    next_try: float = 0.0
    next_pass: float = 0.0
    trouble_at: float | None = None  # store time of the last failed call while leading
    steady_since: float | None = None
    concluded: set[tuple[str, str]] = field(default_factory=set)
    # what this leader knows without asking: the run documents it last read or wrote (with
    # their ETags: a write under a stale one fails and the next pass reads afresh), and the
    # pending attempts, listed every `pending_list_s` and kept up by its own writes between
    _docs: dict[str, tuple[str | None, RunDoc]] = field(default_factory=dict)
    _pending: PendingIndex | None = None
    _pending_at: float = 0.0
    pass_gap: float = 0.0
    next_intake: float = 0.0
    batches_written: int = 0
    rejoin: bool = False  # the lease was lost under it: try again at once, idle or not
    try_gap: float = 0.0
    clock: Callable[[], float] = lambda: 0.0  # a timer for `decide` (bench only)
    on_pass: Callable[[PassReport], None] = lambda _r: None
    on_conclude: Callable[[RunDoc], None] = lambda _d: None
    # How an attempt ended, given the protocol's verdict and each ended owner's result: a real
    # pool asks the run's status document (`jobrunner.scheduler.judge`); the simulation trusts
    # the verdict. One of ok, fail, canceled, retry (spends the budget), undelivered, or a free
    # requeue's cause.
    judge: Callable[[RunDoc, str, dict[str, str]], str] = lambda _d, verdict, _r: verdict
    admit: Callable[[RunDoc], bool] = lambda _d: True  # False: canceled before it was assigned
    # Why a run just taken in can never start (a gang larger than the pool can ever grow to),
    # or None. A real pool fails the run's status with the reason (`RunJudge.refuse`).
    refuse: Callable[[RunDoc], str | None] = lambda _d: None
    on_poison: Callable[[Submission, str], None] = lambda _s, _why: None

    @property
    def leading(self) -> bool:
        return self.lease_id is not None

    def step(self, now: float, *, idle: bool = True) -> float:
        """Lead one pass if holding the lease; try for it when idle. Seconds to the next step."""
        if not self.leading:
            if not idle:
                self.try_gap = self.settings.leader_try_s  # a leader was heard from (or busy)
            if (idle or self.rejoin) and now >= self.next_try:
                # a pool quiet for long needs no quick takeover: each try waits twice as long
                self.try_gap = max(self.settings.leader_try_s, self.try_gap)
                self.next_try = now + self.try_gap
                self.try_gap = min(self.settings.leader_try_max_s, self.try_gap * 2)
                self.rejoin = False
                try:
                    # the proposed id is ours: a retry after a lost answer gets the same lease back
                    won = self.store.acquire_lease(LEADER_BLOB, self.settings.lease_s, self.name)
                except StoreError:
                    won = False
                self.lease_id = self.name if won else None
                if self.lease_id is not None:
                    self.renewed_at, self.next_pass, self.concluded = now, now, set()
                    self.steady_since, self._pending, self._docs = None, None, {}
                    self.pass_gap, self.next_intake = self.settings.pass_s, now
            if not self.leading:
                return max(1e-3, self.next_try - now) if idle else self.settings.leader_try_s
        elif self.lease_id is not None and now - self.renewed_at >= self.settings.renew_s:
            try:
                self.store.renew_lease(LEADER_BLOB, self.lease_id)
                self.renewed_at = now
            except StoreError:
                self.lease_id = None  # stop acting now: the lease may pass to another node
                self.next_try, self.rejoin = now, True  # ... or still be ours, if only the answer was lost
                return self.settings.renew_s
        if now >= self.next_pass:
            busy = False
            try:
                busy = self._pass(now)
            except StoreError:
                self.steady_since = None  # the listings failed: silence stops counting
            # passes that find work come every `pass_s`; idle ones back off to `pass_max_s`
            gap = self.settings.pass_s if busy else min(self.settings.pass_max_s, self.pass_gap * 2)
            self.pass_gap = max(self.settings.pass_s, gap)
            self.next_pass = now + self.pass_gap
        renew_at = self.renewed_at + self.settings.renew_s
        return max(1e-3, min(self.next_pass, renew_at) - now)

    def look_now(self) -> None:
        """Pass and take submissions in at the next step (a local pool's doorbell rang)."""
        self.next_pass = self.next_intake = 0.0
        self.pass_gap = self.settings.pass_s

    # ------------------------------------------------------------------ one pass
    def _pass(self, local: float) -> bool:
        """One pass; True while there is work (anything queued, running or just concluded)."""
        took = self._intake(local)
        nodes = self.store.list(NODES)
        now = nodes.at
        if self._pending is None or now - self._pending_at >= self.settings.pending_list_s:
            listing = self.store.list(PENDING)
            if self._pending is None:
                self._pending = PendingIndex()
            batches = {e.name: (e, self._batch_items(e)) for e in listing.entries if is_batch(e.name)}
            self._pending.replace_all(tuple(e for e in listing.entries if not is_batch(e.name)), batches)
            self._pending_at = listing.at
        pending = self._pending
        if self.steady_since is None:
            self.steady_since = now
        silence_counts = now - self.steady_since > self.settings.stale_after_s
        report = PassReport(now)
        concluded_now: set[str] = set()
        view = _PoolView.build(nodes.entries, now, self.settings.stale_after_s, silence_counts)
        for key, owners in view.attempts.items():
            if key in self.concluded:
                self._revoke(view.live_running(owners))
                continue
            verdict = _verdict(owners, view)
            if verdict is not None:
                with contextlib.suppress(ConflictError):  # another leader's write: read again next pass
                    self._conclude(key, verdict, view)
                    concluded_now.add(key[0])
                    report.concluded += 1
        for run in sorted(pending.canceled):
            self._drop_canceled(run, pending.entries[run])
        skip = view.blocked_runs | concluded_now
        queued = pending.ordered(skip)
        idle = tuple(
            n for n in view.idle if view.attempt_of(n) in self.concluded or view.attempt_of(n) is None
        )
        t0 = self.clock()
        decision = decide(PoolState(now, idle, view.running_jobs(now), queued, ordered=True))
        report.decide_s = self.clock() - t0
        for a in decision.assignments:
            with contextlib.suppress(ConflictError):  # another leader's write: read again next pass
                self._assign(a.run_id, a.attempt, a.nodes, view, pending.entries[a.run_id])
                report.assigned += 1
                report.assigned_to += a.nodes
        self._delete_spent_batches()
        report.waiting = tuple(f"{w.run_id}: {w.reason}" for w in decision.waiting)
        report.nodes_short = decision.nodes_short
        given = sum(len(a.nodes) for a in decision.assignments)
        report.idle_nodes = len(idle) - given
        if report.idle_nodes > 0:
            # nodes are left idle: a new submission may be just what they wait for
            self.next_intake = min(self.next_intake, local)
        wanted = pending.nodes - sum(pending.jobs[r].nodes for r in skip if r in pending.jobs)
        report.demand_nodes = max(0, wanted - len(idle))
        self.on_pass(report)
        waiting = bool(queued or view.attempts) and self.settings.steady_passes
        return bool(took or report.assigned or report.concluded or waiting)

    def _intake(self, local: float) -> int:
        """Take submissions off the queue: a few batches while they come full; after an empty
        receive, at the next pass while the decision leaves nodes idle, and otherwise only
        every `intake_max_s` (a local pool's doorbell asks at once)."""
        if local < self.next_intake:
            return 0
        taken: list[tuple[Submission, RunDoc]] = []
        for _ in range(self.settings.intake_rounds):
            batch = self.store.receive(self.settings.intake_batch)
            taken += [(sub, doc) for sub in batch if (doc := self._take(sub)) is not None]
            if len(batch) < self.settings.intake_batch:
                break
        if taken:
            # one blob holds the whole intake; its messages go only once it is written (a
            # crash between brings them back, and the index takes each run in once)
            items = [{**submission_body(doc), "at": sub.inserted_at} for sub, doc in taken]
            self.batches_written += 1  # a name never written before: a batch is never overwritten
            holder = re.sub(r"[^A-Za-z0-9._-]", "-", self.name)
            first_ms = int(taken[0][0].inserted_at * 1000)
            name = f"{PENDING}{BATCH_MARK}{first_ms:015d}-{holder}-{self.batches_written}"
            tag = self.store.put(name, json.dumps(items).encode(), {"runs": str(len(items))}, if_absent=True)
            entry = BlobEntry(name, tag, taken[0][0].inserted_at, {})
            if self._pending is not None:
                self._pending.put_batches(entry, tuple((doc, sub.inserted_at) for sub, doc in taken))
            for sub, doc in taken:
                self._docs.setdefault(doc.id, (None, doc))  # not written yet: the leader creates it
                self.store.delete_message(sub)
        self.next_intake = local if taken else local + self.settings.intake_max_s
        return len(taken)

    def _take(self, sub: Submission) -> RunDoc | None:
        """The run a submission queues, or None when it was set aside (not one of ours) or
        refused (it can never start), its message deleted."""
        doc = parse_submission(sub.body)
        if isinstance(doc, str):
            self.on_poison(sub, doc)  # set aside first: a crash here brings it back
            self.store.delete_message(sub)
            return None
        reason = self.refuse(doc)
        if reason is not None:
            self._fail_at_intake(doc, reason)  # first: a crash here brings the message back
            self.store.delete_message(sub)
            return None
        return doc

    def _batch_items(self, entry: BlobEntry) -> tuple[tuple[RunDoc, float], ...]:
        """The runs an intake batch holds (read once per ETag): what this leader wrote, so
        an item that does not parse is skipped, never run."""
        known = self._pending.batch_items(entry) if self._pending is not None else None
        if known is not None:
            return known
        try:
            raw = json.loads(self.store.get(entry.name)[0])
        except NotFoundError:
            return ()
        except ValueError:
            raw = []
        out = []
        for item in raw if isinstance(raw, list) else []:
            doc = parse_submission(item)
            at = item.get("at") if isinstance(item, dict) else None
            if not isinstance(doc, str) and isinstance(at, int | float):
                out.append((doc, float(at)))
        return tuple(out)

    def _read_run(self, run: str) -> tuple[RunDoc, str | None]:
        """The run's document, from what this leader last read or wrote when it has it; a run
        never assigned has none yet (ETag None): it is the run as submitted. NotFoundError for
        a run this leader knows nothing of."""
        known = self._docs.get(run)
        if known is not None:
            return known[1], known[0]
        try:
            data, etag, _ = self.store.get(RUNS + run)
        except NotFoundError:
            submitted = self._pending.submitted.get(run) if self._pending is not None else None
            if submitted is None:
                raise
            self._docs[run] = (None, submitted)
            return submitted, None
        doc = RunDoc.decode(data)
        self._docs[run] = (etag, doc)
        return doc, etag

    def _write_run(self, doc: RunDoc, etag: str | None) -> None:
        """Write the run's document under `etag` (None: create it). A conflict (or an
        unanswered write) forgets what this leader knew of it, so that the next pass reads
        it afresh."""
        try:
            if etag is None:
                new = self.store.put(RUNS + doc.id, doc.encode(), {}, if_absent=True)
            else:
                new = self.store.put(RUNS + doc.id, doc.encode(), {}, if_match=etag)
        except StoreError:
            self._docs.pop(doc.id, None)
            raise
        if doc.state in TERMINAL:
            self._docs.pop(doc.id, None)
        else:
            self._docs[doc.id] = (new, doc)

    def _fail_at_intake(self, submitted: RunDoc, reason: str) -> None:
        """End a queued run that was never assigned as failed, with `reason` in its history."""
        try:
            doc, etag = self._read_run(submitted.id)
        except NotFoundError:
            doc, etag = submitted, None
        if doc.state != "queued":
            return
        failed = replace(doc, state="failed", history=(*doc.history, f"refused at intake: {reason}"))
        self._write_run(failed, etag)
        self.on_conclude(failed)

    def _assign(
        self, run: str, attempt: int, nodes: tuple[str, ...], view: _PoolView, pending: BlobEntry
    ) -> None:
        doc, etag = self._read_run(run)
        if doc.state in TERMINAL or doc.attempt > attempt or (doc.state == ACTIVE and doc.attempt == attempt):
            if doc.state == ACTIVE and doc.attempt == attempt and (run, str(attempt)) not in view.attempts:
                # a leader stopped between the assignment and its delivery: nobody runs it
                self._conclude((run, str(attempt)), "undelivered", view)
            elif doc.state in TERMINAL or doc.attempt > attempt:
                self._drop_pending(run, pending)
            return
        if doc.attempt < attempt:
            if doc.state == ACTIVE and doc.attempt == attempt - 1:
                # a conclusion stopped between its pending write and its run write, and no
                # node runs the old attempt any more (this run is not blocked): finish it
                self._finish_requeue(doc, etag, view.at)
            return
        if not self.admit(doc):
            canceled = replace(
                doc, state="canceled", history=(*doc.history, f"canceled while queued at {view.at:.0f}")
            )
            self._write_run(canceled, etag)
            self.on_conclude(canceled)
            self._drop_pending(run, pending)
            return
        owners = tuple((n, view.meta[n]["inc"]) for n in nodes)
        endpoints = tuple(view.meta[n].get("endpoint", "") for n in nodes)
        ends_by = "" if doc.timeout_s is None else repr(view.at + doc.timeout_s)
        active = replace(doc, state=ACTIVE, owners=owners, endpoints=endpoints)
        self._write_run(active, etag)
        delivered = 0
        body = active.encode()  # the node needs no read of the run's document to start
        for rank, node in enumerate(nodes):
            meta = {
                "inc": view.meta[node]["inc"], "state": "assigned", "run": run, "attempt": str(attempt),
                "rank": str(rank), "size": str(len(nodes)), "ends_by": ends_by, "by": "leader",
                **quota_metadata(doc.quota),
                "beat_at": repr(view.beat_at[node]),
            }  # fmt: skip
            try:
                self.store.put(NODES + node, body, meta, if_match=view.etag[node])
                delivered += 1
            except ConflictError:
                delivered += self._retry_delivery(node, meta, body)
        if delivered:
            self._drop_pending(run, pending)
        # else no node heard of it: the pending blob stays, and the next pass finds the run
        # active at an attempt that no node names and requeues it (`undelivered`)

    def _drop_canceled(self, run: str, entry: BlobEntry) -> None:
        """A pending attempt marked canceled: the run ends canceled if still queued (a run
        already active is ended by its nodes, which see the cancel themselves)."""
        try:
            doc, etag = self._read_run(run)
        except NotFoundError:
            # canceled before its submission was taken in: a canceled document stands in its
            # place, and the submission, when it comes, finds the run ended
            doc, etag = RunDoc(run, 1, None), None
        if doc.state == "queued":
            canceled = replace(doc, state="canceled", history=(*doc.history, "canceled while queued"))
            self._write_run(canceled, etag)
            self.on_conclude(canceled)
        self._drop_pending(run, entry)

    def _drop_pending(self, run: str, entry: BlobEntry) -> None:
        """Forget the run's pending attempt as listed, and delete its blob: its own (a requeue
        that rewrote it since keeps it, and the next listing shows it again), or the intake
        batch that held it once no other run there is pending (`_delete_spent_batches`)."""
        if self._pending is not None and self._pending.entries.get(run) == entry:
            self._pending.remove(run)
        if not is_batch(entry.name):
            with contextlib.suppress(ConflictError, NotFoundError):
                self.store.delete(entry.name, if_match=entry.etag)

    def _delete_spent_batches(self) -> None:
        """Delete the intake batches none of whose runs is pending there any more."""
        if self._pending is None:
            return
        for name, etag in self._pending.spent():
            with contextlib.suppress(ConflictError, NotFoundError):
                self.store.delete(name, if_match=etag)
            self._pending.forget_batch(name)

    def _finish_requeue(self, doc: RunDoc, etag: str | None, at: float) -> None:
        new = self._next(doc, "requeue", at)
        self._write_run(new, etag)
        self.on_conclude(new)
        self.concluded.add((doc.id, str(doc.attempt)))

    def _retry_delivery(self, node: str, meta: dict[str, str], body: bytes) -> int:
        """The node wrote its blob between the listing and the assignment (a liveness beat, its
        result): deliver again, up to `delivery_tries` in all, while the same incarnation stays
        idle. Otherwise this owner never hears of it: the attempt has fewer owners than its
        gang, and the next pass requeues it without spending the run's budget."""
        for _ in range(self.settings.delivery_tries - 1):
            _, etag, now_meta = self.store.get(NODES + node)
            if now_meta.get("inc") != meta["inc"] or now_meta.get("state") not in ("idle", "done"):
                return 0
            if now_meta.get("by") != "node":
                return 0  # another leader's write: not ours to overwrite
            try:
                self.store.put(NODES + node, body, meta, if_match=etag)
                return 1
            except ConflictError:
                continue
        return 0

    def _conclude(self, key: tuple[str, str], verdict: str, view: _PoolView) -> None:
        run, attempt = key
        doc, etag = self._read_run(run)
        if doc.state == ACTIVE and str(doc.attempt) == attempt:
            verdict = self.judge(doc, verdict, _results(view.attempts.get(key, ()), view))
            new = self._next(doc, verdict, view.at)
            if new.state == "queued":
                meta = _pending_metadata(new, new.attempt, view.at)
                tag = self.store.put(PENDING + run, b"", meta)
                if self._pending is not None:
                    self._pending.put(BlobEntry(PENDING + run, tag, view.at, meta))
            self._write_run(new, etag)
            self.on_conclude(new)
        self.concluded.add(key)
        self._revoke(view.live_running(view.attempts.get(key, ())))

    def _next(self, doc: RunDoc, verdict: str, at: float) -> RunDoc:
        note = f"attempt {doc.attempt}: {verdict} at {at:.0f}"
        history = (*doc.history, note)
        if verdict == "ok":
            return replace(doc, state="succeeded", history=history)
        if verdict in ("fail", "canceled"):
            return replace(doc, state="failed" if verdict == "fail" else "canceled", history=history)
        free = doc.free_requeues + (0 if verdict in ("undelivered", "retry") else 1)
        if free > self.settings.max_free_requeues:
            return replace(
                doc, state="failed", history=(*history, "free requeues exhausted"), free_requeues=free
            )
        return replace(
            doc, state="queued", attempt=doc.attempt + 1, owners=(), free_requeues=free, history=history
        )

    def _revoke(self, owners: tuple[BlobEntry, ...]) -> None:
        for entry in owners:
            if entry.metadata.get("state") == "revoke":
                continue
            meta = {**entry.metadata, "state": "revoke", "by": "leader", "beat_at": repr(node_beat_at(entry))}
            try:
                self.store.put(entry.name, b"", meta, if_match=entry.etag)
            except ConflictError:
                continue  # it beat meanwhile: the next pass sees it and revokes again


# ---------------------------------------------------------------- reading a listing
class PendingIndex:
    """The pending attempts as the leader knows them, kept in the decision's order (rule 1 of
    `jobrunner.scheduler.decide`) as they change, so that a pass neither parses nor sorts
    the whole queue: an intake, an assignment or a requeue moves one entry; a listing
    (every `pending_list_s`) touches only the entries whose ETag changed.

    An attempt lives in a blob of its own (`pending/<run>`: a requeue, or a cancel mark) or,
    when it is a first attempt as submitted, in the intake batch that took it in
    (`pending/~<time>-<leader>-<n>`: many runs, one blob). A run's own blob wins over a batch,
    and an earlier batch over a later one (a message that came back is taken in once). A
    batch is spent once none of its runs is pending there any more, and is then deleted."""

    def __init__(self) -> None:
        self.entries: dict[str, BlobEntry] = {}  # run -> its own blob, or its batch's (with its metadata)
        self.jobs: dict[str, QueuedJob] = {}
        self.canceled: set[str] = set()
        self.nodes = 0  # the nodes every pending attempt wants, together
        self.submitted: dict[str, RunDoc] = {}  # runs pending in a batch: the run as submitted
        self._order: list[tuple[tuple[int, float, str, int], str]] = []
        self._batches: dict[str, tuple[str, tuple[tuple[RunDoc, float], ...]]] = {}  # name -> (etag, items)
        self._members: dict[str, set[str]] = {}  # batch name -> its runs pending there
        self._own: set[str] = set()  # runs pending in a blob of their own

    def put(self, entry: BlobEntry) -> None:
        """A run's own pending blob, as listed or as this leader wrote it."""
        run = entry.name.removeprefix(PENDING)
        old = self.entries.get(run)
        if old is not None and old.etag == entry.etag and old.name == entry.name:
            return
        self._unlink(run)
        self._add(run, entry)

    def put_batches(self, batch: BlobEntry, items: tuple[tuple[RunDoc, float], ...]) -> None:
        """The first attempts held in the intake batch `batch` (as written, or as listed)."""
        self._batches[batch.name] = (batch.etag, items)
        self._members.setdefault(batch.name, set())
        for doc, at in items:
            self._hold(batch, doc, at)

    def _hold(self, batch: BlobEntry, doc: RunDoc, at: float) -> None:
        """A first attempt held in `batch`, unless the run is pending already."""
        self.submitted.setdefault(doc.id, doc)
        if doc.id in self.entries:
            return
        self._members[batch.name].add(doc.id)
        self._add(doc.id, BlobEntry(batch.name, batch.etag, at, _pending_metadata(doc, 1, at)))

    def _add(self, run: str, entry: BlobEntry) -> None:
        self.entries[run] = entry
        if not is_batch(entry.name):
            self._own.add(run)
        if entry.metadata.get("canceled"):
            self.canceled.add(run)
            return
        job = _queued(run, entry.metadata)
        self.jobs[run] = job
        self.nodes += job.nodes
        bisect.insort(self._order, (job_order(job), run))

    def remove(self, run: str) -> None:
        """The run is pending no more (assigned, ended, or its blob gone)."""
        self._unlink(run)
        self.submitted.pop(run, None)

    def _unlink(self, run: str) -> None:
        entry = self.entries.pop(run, None)
        if entry is not None and is_batch(entry.name):
            self._members.get(entry.name, set()).discard(run)
        self._own.discard(run)
        self.canceled.discard(run)
        job = self.jobs.pop(run, None)
        if job is not None:
            self.nodes -= job.nodes
            del self._order[bisect.bisect_left(self._order, (job_order(job), run))]

    def batch_items(self, batch: BlobEntry) -> tuple[tuple[RunDoc, float], ...] | None:
        """What this index read or wrote of the batch at its listed ETag, or None."""
        known = self._batches.get(batch.name)
        return known[1] if known is not None and known[0] == batch.etag else None

    def spent(self) -> list[tuple[str, str]]:
        """The batches (name, ETag) none of whose runs is pending there any more."""
        return [(name, self._batches[name][0]) for name, runs in self._members.items() if not runs]

    def forget_batch(self, name: str) -> None:
        self._members.pop(name, None)
        self._batches.pop(name, None)

    def replace_all(
        self,
        entries: tuple[BlobEntry, ...],
        batches: dict[str, tuple[BlobEntry, tuple[tuple[RunDoc, float], ...]]] | None = None,
    ) -> None:
        """What a listing says (runs' own blobs, and the batches with what they hold),
        applied as changes: a batch listed at the ETag this index knows is left as it is
        (its runs that left stay gone), so a listing costs what changed, not the queue."""
        batches = batches or {}
        wanted = {e.name.removeprefix(PENDING) for e in entries}
        for name in [
            n for n, (etag, _) in self._batches.items() if n not in batches or batches[n][0].etag != etag
        ]:
            for run in list(self._members.get(name, ())):
                self.remove(run)
            self.forget_batch(name)
        for run in [r for r in self._own if r not in wanted]:
            self.remove(run)
        for e in entries:
            self.put(e)
        for name in sorted(n for n in batches if n not in self._batches):  # earlier batches first
            self.put_batches(*batches[name])

    def ordered(self, skip: set[str]) -> tuple[QueuedJob, ...]:
        """The pending attempts in order, but for the runs in `skip`."""
        jobs = self.jobs
        return tuple([jobs[run] for _, run in self._order if run not in skip])


def is_batch(name: str) -> bool:
    """Whether a pending blob is an intake batch (a run id never begins with the mark)."""
    return name.startswith(PENDING + BATCH_MARK)


def node_beat_at(entry: BlobEntry) -> float:
    """When the node itself last wrote: the leader's writes keep the node's time."""
    if entry.metadata.get("by") == "leader":
        return float(entry.metadata.get("beat_at", entry.last_modified))
    return entry.last_modified


@dataclass
class _PoolView:
    at: float
    meta: dict[str, dict[str, str]]
    etag: dict[str, str]
    beat_at: dict[str, float]
    live: set[str]
    lost: set[str]  # silent past the stale limit, while silence counts
    idle: list[str]
    attempts: dict[tuple[str, str], tuple[BlobEntry, ...]]
    blocked_runs: set[str]

    @classmethod
    def build(
        cls, entries: tuple[BlobEntry, ...], at: float, stale_s: float, silence_counts: bool
    ) -> _PoolView:
        view = cls(at, {}, {}, {}, set(), set(), [], {}, set())
        grouped: dict[tuple[str, str], list[BlobEntry]] = {}
        for e in entries:
            name = e.name.removeprefix(NODES)
            m = e.metadata
            if "inc" not in m:
                continue
            view.meta[name], view.etag[name] = m, e.etag
            view.beat_at[name] = beat = node_beat_at(e)
            if at - beat <= stale_s:
                view.live.add(name)
            elif silence_counts:
                view.lost.add(name)
            state = m.get("state")
            if "run" in m:
                grouped.setdefault((m["run"], m["attempt"]), []).append(e)
                may_run = state in ("assigned", "busy", "revoke") and name not in view.lost
                if may_run:
                    view.blocked_runs.add(m["run"])
            if name in view.live and state in ("idle", "done") and m.get("by") == "node":
                view.idle.append(name)
        view.attempts = {k: tuple(v) for k, v in grouped.items()}
        return view

    def attempt_of(self, node: str) -> tuple[str, str] | None:
        m = self.meta[node]
        return (m["run"], m["attempt"]) if "run" in m else None

    def live_running(self, owners: tuple[BlobEntry, ...]) -> tuple[BlobEntry, ...]:
        return tuple(
            e for e in owners
            if e.metadata.get("state") in ("assigned", "busy") and e.name.removeprefix(NODES) in self.live
        )  # fmt: skip

    def running_jobs(self, now: float) -> tuple[RunningJob, ...]:
        jobs: dict[tuple[str, str], list[str]] = {}
        ends: dict[tuple[str, str], str] = {}
        groups: dict[tuple[str, str], tuple[str, ...]] = {}
        for name, m in self.meta.items():
            if m.get("state") in ("assigned", "busy", "revoke") and name in self.live:
                key = (m["run"], m["attempt"])
                jobs.setdefault(key, []).append(name)
                ends[key] = m.get("ends_by", "")
                groups[key] = tuple(g for g, _ in decode_quota(m.get("quota")))
        out = []
        for key, names in jobs.items():
            end = ends[key]
            started, timeout = (float(end), 0.0) if end else (now, None)
            out.append(RunningJob(key[0], tuple(names), started, timeout, groups[key]))
        return tuple(out)


def _ended(m: dict[str, str]) -> bool:
    return m.get("state") == "done" or (m.get("state") == "stopped" and "result" in m)


def _results(owners: tuple[BlobEntry, ...], view: _PoolView) -> dict[str, str]:
    """Each owner's result once it ended (`lost` for one silent past the stale limit)."""
    out = {}
    for e in owners:
        name = e.name.removeprefix(NODES)
        if _ended(e.metadata):
            out[name] = e.metadata.get("result", "lost")
        elif name in view.lost:
            out[name] = "lost"
    return out


def _verdict(owners: tuple[BlobEntry, ...], view: _PoolView) -> str | None:
    """How an attempt ended, from its owners' blobs; None while it still runs."""
    size = int(owners[0].metadata.get("size", "1"))
    results = []
    running = False
    for e in owners:
        name, m = e.name.removeprefix(NODES), e.metadata
        if _ended(m):
            results.append(m.get("result", "lost"))
        elif name in view.lost:
            results.append("lost")
        else:
            running = True
    failures = [r for r in results if r != "ok"]
    if failures:
        # the root cause before its consequences: peers that lost their collective say `peer`
        causes = [r for r in failures if r != "peer"] or failures
        return "fail" if "fail" in causes else causes[0]
    if len(owners) < size and not running:
        return "undelivered"
    if running or len(results) < size:
        return None
    return "ok"


def _queued(run: str, m: dict[str, str]) -> QueuedJob:
    return QueuedJob(run, int(m["attempt"]), int(m["nodes"]), float(m["submitted_at"]),
                     int(m.get("priority", "0")), _opt_float(m.get("timeout")),
                     decode_quota(m.get("quota")))  # fmt: skip


def _opt_float(value: object) -> float | None:
    return None if value in (None, "") else float(str(value))
