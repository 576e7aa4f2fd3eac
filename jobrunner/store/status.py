"""A run's status document and where a run's files live in the store.

One JSON document per run, `runs/<experiment>/<id>/status.json`, changed only by
read-modify-write under an ETag check (`update_status`), so that agents of a gang, the
submitter and `jobrunner cancel` never overwrite each other. Every state change appends a
timestamped `Transition`. A small pointer blob `runs/_ids/<id>` maps a run id to its
experiment, so that commands need only the id.

Failure modes: NotFoundError for an unknown run id; StoreError when the store gives up;
ConflictError only when `update_status` lost the race `MAX_UPDATE_TRIES` times in a row;
DamagedRunFileError (a ConfigError naming the blob and the field) when status.json is not a
status document, e.g. after someone edited it by hand.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, ValidationError

from jobrunner.api import FailureKind, JobState
from jobrunner.errors import ConfigError, ConflictError, NotFoundError, problems_from_validation
from jobrunner.store.client import RUNS, Store

MAX_UPDATE_TRIES = 20
MAX_REASON_CHARS = 500  # a reason or a note in status.json; the whole text stays in the logs
_CUT = "... (cut: the whole text is in the run's logs)"


def cut_reason(text: str | None) -> str | None:
    """`text` at most MAX_REASON_CHARS long: a job's 10 MB stderr line, copied into a node's,
    the run's and a transition's reason, must not make a 30 MB status.json."""
    if text is None or len(text) <= MAX_REASON_CHARS:
        return text
    return text[: MAX_REASON_CHARS - len(_CUT)] + _CUT


# Cut when read and when written (a `model_copy` update is not validated).
Reason = Annotated[str | None, AfterValidator(cut_reason), PlainSerializer(cut_reason)]
_ID_INDEX = "_ids"


def utc_now() -> str:
    """Now, as ISO 8601 UTC with milliseconds (what every timestamp in the store uses)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """A run id that sorts by submit time and is unique without coordination."""
    return datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def safe_segment(name: str) -> str:
    """A name usable as one blob path segment (experiment names are free text)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "default"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RunRef(_Frozen):
    """Where one run lives: `runs/<experiment>/<id>/`."""

    experiment: str
    id: str

    @property
    def prefix(self) -> str:
        return f"{self.experiment}/{self.id}/"

    def blob(self, name: str) -> str:
        return self.prefix + name

    @property
    def status_blob(self) -> str:
        return self.blob("status.json")

    @property
    def spec_blob(self) -> str:
        return self.blob("spec.json")

    @property
    def code_blob(self) -> str:
        return self.blob("code.tar.gz")

    def logs_prefix(self, attempt: int) -> str:
        return self.blob(f"logs/{attempt}/")

    def outputs_prefix(self, output: str) -> str:
        return self.blob(f"outputs/{output}/")

    def inputs_prefix(self, name: str) -> str:
        return self.blob(f"inputs/{name}/")


class Transition(_Frozen):
    state: JobState
    at: str
    attempt: int
    note: Reason = None


class NodeStatus(_Frozen):
    """One gang member in the current attempt."""

    name: str
    rank: int
    address: str = ""
    exit_code: int | None = None
    finished_at: str | None = None
    failure_kind: FailureKind | None = None
    reason: Reason = None


class RunStatus(_Frozen):
    """The run's status document (status.json)."""

    id: str
    experiment: str
    pool: str
    display_name: str | None = None
    kind: Literal["job", "sweep"] = "job"  # a sweep is a parent run: its trials are jobs
    parent: str | None = None  # the sweep a trial belongs to
    tags: dict[str, str] = {}
    state: JobState = JobState.QUEUED
    attempt: int = 1
    max_attempts: int = 1
    instance_count: int = 1
    nodes: tuple[NodeStatus, ...] = ()
    exit_code: int | None = None
    reason: Reason = None
    failure_kind: FailureKind | None = None
    cancel_requested: bool = False
    user_failures: int = 0  # attempts that failed in the user's command: the retry budget spent
    free_requeues: int = 0  # attempts lost to nodes, preemption or infrastructure
    submitted_at: str
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    transitions: tuple[Transition, ...] = ()

    @property
    def ref(self) -> RunRef:
        return RunRef(experiment=self.experiment, id=self.id)

    def moved_to(self, state: JobState, *, note: str | None = None, **changes: Any) -> RunStatus:
        """This status in `state`, with the transition recorded and `changes` applied."""
        now = utc_now()
        attempt = int(changes.get("attempt", self.attempt))
        extra: dict[str, Any] = {}
        if state is JobState.RUNNING and self.started_at is None:
            extra["started_at"] = now
        if state.terminal:
            extra["finished_at"] = now
        return self.model_copy(
            update={
                **extra,
                **changes,
                "state": state,
                "updated_at": now,
                "transitions": (
                    *self.transitions,
                    Transition(state=state, at=now, attempt=attempt, note=note),
                ),
            }
        )

    def with_node(self, node: NodeStatus) -> RunStatus:
        """This status with `node` put in place of the member of the same rank."""
        others = tuple(n for n in self.nodes if n.rank != node.rank)
        nodes = tuple(sorted((*others, node), key=lambda n: n.rank))
        return self.model_copy(update={"nodes": nodes, "updated_at": utc_now()})


class DamagedRunFileError(ConfigError):
    """A run's file in the store (status.json, spec.json) that does not parse: edited by hand,
    truncated, or written by another program."""


M = TypeVar("M", bound=BaseModel)


def parse_run_file(model: type[M], data: bytes, blob: str) -> M:
    """`data` as a `model`; DamagedRunFileError naming `runs/<blob>` and the first bad field."""
    fix = "restore the file, or delete the run's folder from the store"
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        problem = problems_from_validation(exc, model, file=f"{RUNS}/{blob}")[0]
        raise DamagedRunFileError([problem if problem.fix else replace(problem, fix=fix)]) from None


def create_status(store: Store, status: RunStatus) -> None:
    """Write a new run's status document and its id pointer. ConflictError if it exists."""
    store.put(RUNS, f"{_ID_INDEX}/{status.id}", status.experiment.encode())
    store.put(RUNS, status.ref.status_blob, status.model_dump_json(indent=2).encode(), if_absent=True)


def find_run(store: Store, run_id: str) -> RunRef:
    """The run with this id. NotFoundError (with the fix) when there is none."""
    try:
        experiment, _ = store.get(RUNS, f"{_ID_INDEX}/{run_id}")
    except NotFoundError:
        raise NotFoundError(
            f"no run with id {run_id!r} in the job store", fix="`jobrunner list` shows the runs"
        ) from None
    return RunRef(experiment=experiment.decode(), id=run_id)


def read_status(store: Store, ref: RunRef) -> tuple[RunStatus, str]:
    """The run's status and the ETag to update it with."""
    data, etag = store.get(RUNS, ref.status_blob)
    return parse_run_file(RunStatus, data, ref.status_blob), etag


def update_status(store: Store, ref: RunRef, change: Callable[[RunStatus], RunStatus | None]) -> RunStatus:
    """Apply `change` to the current status under an ETag check, re-reading on a lost race.

    `change` may be called several times and must be pure; returning None (or the status
    unchanged) writes nothing. Returns the status as stored afterwards.
    """
    for _ in range(MAX_UPDATE_TRIES):
        current, etag = read_status(store, ref)
        new = change(current)
        if new is None or new == current:
            return current
        try:
            store.put(RUNS, ref.status_blob, new.model_dump_json(indent=2).encode(), if_match=etag)
            return new
        except ConflictError:
            continue
    raise ConflictError(f"status of run {ref.id} is changing too fast to update", fix="try again")


def list_runs(store: Store, experiment: str | None = None) -> list[RunStatus]:
    """Every run (of one experiment), newest first."""
    prefix = f"{safe_segment(experiment)}/" if experiment else ""
    out: list[RunStatus] = []
    for blob in store.list(RUNS, prefix):
        parts = blob.name.split("/")
        if len(parts) == 3 and parts[2] == "status.json" and parts[0] != _ID_INDEX:
            try:
                data, _ = store.get(RUNS, blob.name)
            except NotFoundError:
                continue
            try:
                out.append(parse_run_file(RunStatus, data, blob.name))
            except DamagedRunFileError:
                continue  # one damaged run must not hide the others; `status <id>` names it
    return sorted(out, key=lambda s: s.submitted_at, reverse=True)
