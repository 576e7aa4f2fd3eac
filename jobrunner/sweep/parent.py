"""A sweep as a parent run of a pool: its files in the store, and how it ends.

    status = create_sweep_run(store, pool, sweep, text)   # `jobrunner submit sweep.yml`
    parent, etag = read_parent(store, ref)                # the file and its `SweepRecord`
    write_parent(store, ref, parent, etag)                # ETag-guarded: ConflictError if another wrote
    conclude(store, ref, parent.record, goal)             # the parent's status, once every trial ended

The parent is an ordinary run in the `runs` container (`runs/<experiment>/<id>/`, its id
`sweep-...`, `kind: sweep` in its status.json), so `status`, `list` and `cancel` find it.
Beside its status it keeps `sweep.json` (`SweepParent`: the sweep file as submitted and the
record of its trials, rewritten under its ETag after each pass that changed it), the code
and local inputs the trials share (uploaded once, copied to each trial), and in the pool's
scheduler blobs a marker `sweeps/<id>` that the pool's leader lists to find the sweeps it
drives (`jobrunner.sweep.conductor`). The parent is never queued: nothing runs it but the
leader's passes.

Every write is ordered so that a crash leaves the sweep findable or concluded: the marker is
written last at submit and deleted only after the parent's status is terminal.

Failure modes: StoreError from the store; NotFoundError for a sweep whose files are gone;
DamagedRunFileError for a `sweep.json` that does not parse.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from jobrunner.api import JobState
from jobrunner.errors import NotFoundError
from jobrunner.node.staging import pack_code, upload_local_inputs
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import (
    RunRef,
    RunStatus,
    create_status,
    new_run_id,
    parse_run_file,
    safe_segment,
    update_status,
    utc_now,
)
from jobrunner.sweep.driver import SweepRecord
from jobrunner.sweep.load import SweepSpec, parse_sweep

SWEEP_BLOB = "sweep.json"
MARKERS = "sweeps/"  # in the pool's scheduler blobs: one per sweep still driven
CANCELED_REASON = "canceled on request"


class SweepParent(BaseModel):
    """`sweep.json`: what the leader needs to drive the sweep, wherever it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str  # the sweep file as submitted
    source: str  # its path on the submitting machine (named in problems)
    base_dir: str  # the folder its relative paths were relative to there
    record: SweepRecord

    def spec(self) -> SweepSpec:
        """The sweep, validated again (the files it names are not here: their contents were
        uploaded at submit)."""
        return parse_sweep(self.text, source=self.source, base_dir=self.base_dir, check_paths=False)


def sweep_blob(ref: RunRef) -> str:
    return ref.blob(SWEEP_BLOB)


def new_sweep_id() -> str:
    """A sweep's id: like a run's, sorting by submit time (`sweep-YYYYMMDD-HHMMSS-xxxxxx`)."""
    return "sweep-" + new_run_id().removeprefix("run-")


def trial_id(sweep_id: str, index: int) -> str:
    """Trial `index`'s run id: derived, so submitting it twice makes one run."""
    return f"{sweep_id}-t{index}"


def create_sweep_run(
    store: Store, pool: str, sweep: SweepSpec, text: str, *, seed: int | None = None
) -> RunStatus:
    """Create the parent run of `sweep` (queued) with its shared code and local inputs, and
    the marker that has the pool's leader drive it. `seed`: the sampler's where the file has
    none (default: drawn now, kept in the record so every leader draws the same)."""
    import secrets

    trial = sweep.stand_in_job()
    run_id = new_sweep_id()
    experiment = safe_segment(trial.experiment_name or Path.cwd().name)
    now = utc_now()
    name = sweep.file.display_name or sweep.file.name
    status = RunStatus(
        id=run_id, experiment=experiment, pool=pool, display_name=name, kind="sweep",
        tags={str(k): str(v) for k, v in (sweep.file.tags or {}).items()}, submitted_at=now, updated_at=now,
    ).moved_to(JobState.QUEUED, note=f"sweep submitted to pool {pool}")  # fmt: skip
    ref = status.ref
    if trial.code:
        store.put(RUNS, ref.code_blob, pack_code(Path(trial.code)))
    upload_local_inputs(store, ref, trial)
    record = SweepRecord.start(seed=secrets.randbelow(2**31) if seed is None else seed, now=datetime.now(UTC))
    parent = SweepParent(
        text=text, source=sweep.source, base_dir=str(sweep.base_dir.resolve()), record=record
    )
    store.put(RUNS, sweep_blob(ref), parent.model_dump_json().encode(), if_absent=True)
    create_status(store, status)
    AzurePoolStore(store, pool).put(MARKERS + run_id, b"", {"experiment": experiment})
    return status


def read_parent(store: Store, ref: RunRef) -> tuple[SweepParent, str]:
    """The sweep's file and record, and the ETag to write the record back under."""
    data, etag = store.get(RUNS, sweep_blob(ref))
    return parse_run_file(SweepParent, data, sweep_blob(ref)), etag


def write_parent(store: Store, ref: RunRef, parent: SweepParent, etag: str) -> str:
    """Write the record back if nobody else did since `etag` (ConflictError otherwise)."""
    return store.put(RUNS, sweep_blob(ref), parent.model_dump_json().encode(), if_match=etag)


def started(store: Store, ref: RunRef) -> None:
    """The parent runs once its first trial is submitted."""
    update_status(
        store,
        ref,
        lambda s: (
            s.moved_to(JobState.RUNNING, note="trials submitted") if s.state is JobState.QUEUED else None
        ),
    )


def outcome(record: SweepRecord, metric: str) -> tuple[JobState, str]:
    """How a done sweep ends: canceled on request, succeeded with its best trial, or failed
    when no trial logged the primary metric."""
    best = record.best_trial()
    if record.reason == CANCELED_REASON:
        return JobState.CANCELED, CANCELED_REASON
    if best is None:
        failed = sum(t.state == "failed" for t in record.trials)
        return JobState.FAILED, (
            f"no trial logged {metric} ({len(record.trials)} trials, {failed} failed; {record.reason})"
        )
    return JobState.SUCCEEDED, f"best trial {best.run_id}: {metric} {best.metric:.6g} ({record.reason})"


def conclude(store: Store, ref: RunRef, record: SweepRecord, metric: str) -> RunStatus:
    """End the parent run as `outcome` says (nothing if it already ended)."""
    state, reason = outcome(record, metric)

    def change(s: RunStatus) -> RunStatus | None:
        # a parent canceled while queued is already terminal, with its reason
        return None if s.state.terminal else s.moved_to(state, note=reason, reason=reason)

    return update_status(store, ref, change)


def drop_marker(store: Store, pool: str, sweep_id: str) -> None:
    """The leader stops looking at a concluded sweep."""
    with contextlib.suppress(NotFoundError):
        AzurePoolStore(store, pool).delete(MARKERS + sweep_id)
