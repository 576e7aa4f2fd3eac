"""Gang scheduling: a job of N instances starts on N agents at once, in queue order.

The protocol: nodes are reserved in queue order on a shared *gang board*, one JSON blob
per pool (`pools/<pool>/board.json`), changed only under ETag checks.

1. An agent that takes a multi-node job's message off the pool queue checks that the run is
   still queued, posts an entry (job, attempt, size, sequence) on the board, sends N-1
   `join` messages to the queue to wake idle agents, and deletes the job's message: from
   then on the board, a durable blob, holds the job.
2. An agent with nothing to do (woken by a `join` message, after finishing a job, and every
   `board_poll_s` while idle) calls `place()`: it joins the *earliest* entry that is not
   full. An agent already waiting in a later entry moves forward to an earlier one that is
   not full. The entry that becomes full is marked started, its members frozen in join
   order: member 0 is the leader, whose address and port are the rendezvous endpoint.
3. Members run their part; each leaves the entry when done, and the last one removes it.

Why no deadlock: two 2-node jobs on 2 agents may be posted at once with one agent waiting
in each, but every waiting agent moves to the earliest entry that is not full, so both end
in the first job, which starts; the second starts when they are done. Why no starvation:
entries start in sequence order and an agent never skips an earlier entry that needs it,
so single-node jobs cannot overtake a gang forever (the board is read before the queue).
Dead agents: waiting members whose heartbeat is stale are pruned from entries that have not
started; a started gang with a lost member is handled by the surviving members (they stop
and requeue the run, see `jobrunner.agent`). A job needing more nodes than the pool can
ever have is refused at submit, so the earliest entry always fills eventually.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from jobrunner.api import Gang, GangMember
from jobrunner.errors import ConflictError, NotFoundError
from jobrunner.status import utc_now
from jobrunner.store import POOLS, Store

MAX_BOARD_TRIES = 30


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Seat(_Frozen):
    """An agent's place in a gang entry."""

    name: str
    address: str
    port: int  # a free port on that agent: the leader's is the rendezvous port
    ports: tuple[int, ...] = ()  # more free ports on that agent (per-task ports, TensorFlow)


class Entry(_Frozen):
    """A multi-node job attempt waiting for (or running on) its agents."""

    job_id: str
    experiment: str
    attempt: int
    size: int
    seq: str  # when it was posted (ISO 8601): the board's order
    members: tuple[Seat, ...] = ()  # who is in it now (members leave as they finish)
    started: bool = False
    # The members when it started, kept as they were: a slow member that reads the board
    # after a fast one has finished and left still gets the whole gang and its own rank.
    gang_members: tuple[Seat, ...] = ()
    started_at: str | None = None  # ISO 8601, when it filled

    @property
    def key(self) -> tuple[str, int]:
        return (self.job_id, self.attempt)

    @property
    def full(self) -> bool:
        return len(self.members) >= self.size

    def started_s_ago(self, now: datetime | None = None) -> float:
        """Seconds since it filled (infinite when not known: a board from before this was kept)."""
        if self.started_at is None:
            return math.inf
        at = datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
        return ((now or datetime.now(UTC)) - at).total_seconds()

    def has(self, agent: str) -> bool:
        return any(m.name == agent for m in self.members)

    def gang(self, agent: str, *, extra_ports: int = 0) -> Gang:
        """The gang as seen from `agent`, a member of this started entry (whoever has left since)."""
        seats = self.gang_members or self.members
        rank = next(i for i, m in enumerate(seats) if m.name == agent)
        members = tuple(GangMember(m.name, m.address, i) for i, m in enumerate(seats))
        # Every member reserved its own ports; the plan reads per-rank ports from this tuple.
        ports = tuple(p for m in seats for p in m.ports[:extra_ports]) if extra_ports else ()
        return Gang(self.job_id, self.attempt, members, rank, seats[0].port, ports)


class Board(_Frozen):
    entries: tuple[Entry, ...] = ()

    def find(self, job_id: str, attempt: int) -> Entry | None:
        return next((e for e in self.entries if e.key == (job_id, attempt)), None)

    def of_agent(self, agent: str) -> Entry | None:
        return next((e for e in self.entries if e.has(agent)), None)

    def _replace(self, old: Entry | None, new: Entry | None) -> Board:
        entries = [e for e in self.entries if old is None or e.key != old.key]
        if new is not None:
            entries.append(new)
        return Board(entries=tuple(sorted(entries, key=lambda e: (e.seq, e.job_id))))

    def post(self, entry: Entry) -> Board:
        """The board with `entry` on it (posting the same job attempt twice changes nothing)."""
        return self if self.find(*entry.key) else self._replace(None, entry)

    def place(self, seat: Seat) -> Board:
        """The board after the agent `seat.name` took its place (see the module docstring)."""
        mine = self.of_agent(seat.name)
        if mine is not None and mine.started:
            return self
        target = next(
            (e for e in self.entries if not e.started and not e.full and not e.has(seat.name)), None
        )
        if target is None or (mine is not None and target.seq >= mine.seq):
            return self
        board = self
        if mine is not None:
            board = board._replace(
                mine, mine.model_copy(update={"members": _without(mine.members, seat.name)})
            )
        joined = target.model_copy(update={"members": (*target.members, seat)})
        if joined.full:
            joined = joined.model_copy(
                update={"started": True, "gang_members": joined.members, "started_at": utc_now()}
            )
        return board._replace(target, joined)

    def leave(self, agent: str, job_id: str, attempt: int) -> Board:
        """The board without `agent` in that entry; an entry left empty after it started goes away."""
        entry = self.find(job_id, attempt)
        if entry is None or not entry.has(agent):
            return self
        members = _without(entry.members, agent)
        new = None if entry.started and not members else entry.model_copy(update={"members": members})
        return self._replace(entry, new)

    def drop(self, job_id: str) -> Board:
        """The board without any entry of this job (canceled or finished elsewhere)."""
        return Board(entries=tuple(e for e in self.entries if e.job_id != job_id))

    def prune(self, alive: Collection[str]) -> Board:
        """Members that are not `alive` removed from entries that have not started."""
        entries = tuple(
            e
            if e.started
            else e.model_copy(update={"members": tuple(m for m in e.members if m.name in alive)})
            for e in self.entries
        )
        return Board(entries=entries)


def _without(members: tuple[Seat, ...], agent: str) -> tuple[Seat, ...]:
    return tuple(m for m in members if m.name != agent)


def board_blob(pool: str) -> str:
    return f"{pool}/board.json"


def read_board(store: Store, pool: str) -> tuple[Board, str | None]:
    """The pool's board and its ETag (None when no board exists yet)."""
    try:
        data, etag = store.get(POOLS, board_blob(pool))
    except NotFoundError:
        return Board(), None
    return Board.model_validate_json(data), etag


def update_board(store: Store, pool: str, change: Callable[[Board], Board]) -> Board:
    """Apply a pure `change` to the board under an ETag check, retrying lost races."""
    for _ in range(MAX_BOARD_TRIES):
        board, etag = read_board(store, pool)
        new = change(board)
        if new == board:
            return board
        body = json.dumps(new.model_dump(mode="json"), indent=1).encode()
        try:
            if etag is None:
                store.put(POOLS, board_blob(pool), body, if_absent=True)
            else:
                store.put(POOLS, board_blob(pool), body, if_match=etag)
            return new
        except ConflictError:
            continue
    raise ConflictError(f"the gang board of pool {pool} is changing too fast to update", fix="try again")
