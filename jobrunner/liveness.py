"""Whether agents are gone, judged from their heartbeats only when silence means something.

    beats = read_heartbeats(store, pool, stale_after_s, witness="vm-0")   # None: cannot tell now
    beats.gone("vm-1")                     # silent too long (or stopped)
    beats.gone("vm-1", job_id=run_id)      # ... or no longer working on that run

An agent rewrites its record every `heartbeat_s` (`jobrunner.registry`); one whose record is
older than `stale_after_s` is taken for dead. Two things make old records lie:

- A storage outage: afterwards every record is old, and the store's retries hide the outage
  from the caller (a call that waited it out still succeeds). So silence counts only once
  this process's store client has gone `stale_after_s` without trouble, plus one backoff step
  (`Retry.max_s`): the longest a live peer that waited out the same outage may take to notice
  that the store is back.
- A slow store or a starved machine: records land late everywhere. The `witness` (the agent
  asking, alive by definition) shows how late a live agent's record is right now; a record
  counts as silent only when it is `stale_after_s` older than that.

A node still works on a run when its agent's record also names that run as its current job:
an agent restarted under the same name (systemd after a crash) beats again, but no longer
runs the attempt it had.

Failure modes: StoreError when the store gives up (callers take that as "cannot tell").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from jobrunner.registry import AgentRecord, list_agents
from jobrunner.store import Store


def silence_counts(store: Store, stale_after_s: float) -> bool:
    """Whether an old heartbeat can mean a gone agent now (see the module docstring)."""
    return store.steady_s() > stale_after_s + store.retry.max_s


@dataclass(frozen=True)
class Heartbeats:
    """The pool's agent records at one moment, with the witness's lag."""

    records: dict[str, AgentRecord]
    stale_after_s: float
    lag_s: float  # how old a live agent's record is right now (the witness's own)
    at: datetime

    def gone(self, name: str, *, job_id: str | None = None) -> bool:
        """Whether agent `name` is gone (or, given `job_id`, no longer works on that run)."""
        record = self.records.get(name)
        if record is None or record.state == "stopped":
            return True
        if job_id is not None and record.current_job != job_id:
            return True
        return record.age_s(self.at) > self.stale_after_s + self.lag_s


def read_heartbeats(store: Store, pool: str, stale_after_s: float, *, witness: str) -> Heartbeats | None:
    """The pool's heartbeats, or None when silence cannot be trusted (recent store trouble),
    so that nobody is declared gone on an outage's evidence. StoreError if the store fails."""
    if not silence_counts(store, stale_after_s):
        return None
    records = {a.name: a for a in list_agents(store, pool)}
    if not silence_counts(store, stale_after_s):
        return None  # the listing itself met trouble: the records may predate the outage's end
    now = datetime.now(UTC)
    mine = records.get(witness)
    lag = max(0.0, mine.age_s(now)) if mine is not None else 0.0
    return Heartbeats(records, stale_after_s, lag, now)
