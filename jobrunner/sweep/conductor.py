"""The pool leader's part in sweeps: every few seconds, one pass over each sweep it drives.

    conductor = SweepConductor(store, pool="a100-spot")
    conductor.step(time.monotonic())    # the agent calls it while it holds the pool's lease

A pass lists the pool's sweep markers (`sweeps/<id>`, `jobrunner.sweep.parent`) and, for
each sweep, reads its record and parent status, then:

- a parent canceled (or asked to cancel): its unfinished trials are canceled, and the
  sweep is done;
- otherwise one `drive` pass over its trials (`jobrunner.sweep.driver`) through the pool's
  backend (`jobrunner.sweep.pool_backend`);
- a done sweep's trials are read again until each has ended; then the parent concludes
  (`parent.conclude`) and its marker goes.

The record is written back only when the pass changed it, under the ETag it was read with:
a pass that lost the race (a leader that lost its lease, still finishing a pass) is
discarded, and what it submitted is found again by the next pass, since trial ids follow
from the sweep's. So a new leader, after the old one died at any point, carries on with
nothing lost or doubled. A pool with no sweep costs one listing every `IDLE_PASS_S`; each
sweep adds a read of its record and status every `PASS_S`, and one per unfinished trial
(its status and metric). A submit on this machine rings a local pool's doorbell, which
wakes the conductor at once; elsewhere a new sweep starts within `IDLE_PASS_S`.

Failure modes: none raised; a sweep whose pass fails (the store, the tracking server, a
damaged file) is logged and tried again on the next pass.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from jobrunner.api import JobState
from jobrunner.errors import ConflictError, JobSpecError, NotFoundError, TrainstackError
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.store.client import Store
from jobrunner.store.status import DamagedRunFileError, RunRef, read_status
from jobrunner.sweep.driver import SweepRecord, cancel_sweep, drive, refresh
from jobrunner.sweep.parent import (
    CANCELED_REASON,
    MARKERS,
    conclude,
    drop_marker,
    read_parent,
    started,
    write_parent,
)
from jobrunner.sweep.pool_backend import PoolTrialBackend

PASS_S = 2.0  # at most this often while a sweep runs; trials take seconds at the least
IDLE_PASS_S = (
    15.0  # while the pool has no sweep (the agent: 3 scheduler passes, this at least with a doorbell)
)

log = logging.getLogger(__name__)


class SweepConductor:
    """Drives the sweeps of one pool (see the module docstring)."""

    def __init__(
        self, store: Store, pool: str, *, pass_s: float = PASS_S, idle_pass_s: float = IDLE_PASS_S
    ) -> None:
        self.store, self.pool, self.pass_s, self.idle_pass_s = store, pool, pass_s, idle_pass_s
        self.pool_store = AzurePoolStore(store, pool)
        self.next_pass = 0.0

    def step(self, now: float) -> None:
        """One pass over every sweep, if `pass_s` went by since the last one (`idle_pass_s`
        when the last pass found none; `wake` makes the next step pass at once)."""
        if now < self.next_pass:
            return
        self.next_pass = now + self.pass_s
        try:
            markers = self.pool_store.list(MARKERS).entries
        except TrainstackError as exc:
            log.warning("sweeps: cannot list them: %s", exc)
            return
        if not markers:
            self.next_pass = now + self.idle_pass_s
        for entry in markers:
            sweep_id = entry.name.removeprefix(MARKERS)
            ref = RunRef(experiment=entry.metadata.get("experiment", ""), id=sweep_id)
            try:
                self.drive_one(ref)
            except ConflictError:
                log.info("sweep %s: written by another pass meanwhile", sweep_id)
            except TrainstackError as exc:
                log.warning("sweep %s: pass failed, again next pass: %s", sweep_id, exc)

    def wake(self) -> None:
        """Something was submitted (a local pool's doorbell rang): look at once."""
        self.next_pass = 0.0

    def drive_one(self, ref: RunRef) -> None:
        """One pass over one sweep. ConflictError when another pass wrote its record first."""
        try:
            parent, etag = read_parent(self.store, ref)
            status, _ = read_status(self.store, ref)
        except NotFoundError:
            drop_marker(self.store, self.pool, ref.id)  # its files were deleted
            return
        except DamagedRunFileError as exc:
            log.warning("sweep %s: %s", ref.id, exc)
            return
        try:
            spec = parent.spec()
        except JobSpecError as exc:  # pragma: no cover - it was validated at submit
            log.warning("sweep %s: its file no longer loads: %s", ref.id, exc)
            return
        backend = PoolTrialBackend(self.store, status)
        record: SweepRecord = parent.record
        now = datetime.now(UTC)
        if record.done:
            record = refresh(record, backend, now=now)
        elif status.cancel_requested or status.state is JobState.CANCELED:
            record = cancel_sweep(record, backend, reason=CANCELED_REASON)
        else:
            record = drive(spec, record, backend, now=now)
        if record != parent.record:
            write_parent(self.store, ref, parent.model_copy(update={"record": record}), etag)
        if record.trials and status.state is JobState.QUEUED:
            started(self.store, ref)
        if record.settled:
            final = conclude(self.store, ref, record, spec.file.objective.primary_metric)
            log.info("sweep %s: %s (%s)", ref.id, final.state.value, final.reason)
            drop_marker(self.store, self.pool, ref.id)
