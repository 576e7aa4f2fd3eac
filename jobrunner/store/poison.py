"""Messages and runs that cannot be worked on: set aside with the reason, never retried forever.

    quarantine(store, pool, content, reason)   -> the message on `pool-<pool>-poison`
    fail_damaged_run(store, ref, reason)       -> the run FAILED (its status rewritten if damaged)

A queue message that does not parse, or whose run's files (status.json, spec.json) do not,
would otherwise come back after every visibility timeout and stop every agent that takes
it. Instead it goes, with the reason, to the pool's poison queue (`jobrunner.store.client.queue_name`
of the pool plus `-poison`), where a person can read it, and the run it names (if any) is
failed with the reason, so that `jobrunner status` and `submit --wait` tell the user.

Failure modes: StoreError when the store gives up (the caller leaves the message in the
queue; it comes back later).
"""

from __future__ import annotations

import json
import logging
import re

from jobrunner.api import FailureKind, JobState
from jobrunner.errors import NotFoundError
from jobrunner.store.client import RUNS, Store, queue_name
from jobrunner.store.status import DamagedRunFileError, RunRef, RunStatus, find_run, update_status, utc_now

MAX_KEPT_CHARS = 16_000  # a queue message holds at most 64 KiB; keep room for the reason
_RUN_ID = re.compile(r"run-\d{8}-\d{6}-[0-9a-f]{6}")

log = logging.getLogger(__name__)


def poison_queue(pool: str) -> str:
    """The queue where the pool's unworkable messages go."""
    return f"{queue_name(pool)}-poison"


def quarantine(store: Store, pool: str, content: bytes, reason: str) -> RunRef | None:
    """Put `content` on the poison queue with `reason`; fail the run it names. Returns that run."""
    text = content.decode("utf-8", errors="replace")
    body = {"reason": reason, "message": text[:MAX_KEPT_CHARS], "at": utc_now()}
    store.send(poison_queue(pool), json.dumps(body))
    ref = _named_run(store, text)
    log.warning(
        "quarantined a message of pool %s to queue %s (%s): %s",
        pool, poison_queue(pool), f"run {ref.id} fails" if ref else "it names no run", reason,
    )  # fmt: skip
    if ref is not None:
        fail_damaged_run(store, ref, reason, pool=pool)
    return ref


def _named_run(store: Store, text: str) -> RunRef | None:
    """The run a broken message is about, when its text names one that exists."""
    found = _RUN_ID.search(text)
    if found is None:
        return None
    try:
        return find_run(store, found.group(0))
    except NotFoundError:
        return None


def fail_damaged_run(
    store: Store, ref: RunRef, reason: str, *, pool: str, kind: FailureKind = FailureKind.INFRASTRUCTURE
) -> None:
    """Fail the run with `reason` unless it already ended; a damaged status is replaced."""

    def change(s: RunStatus) -> RunStatus | None:
        if s.state.terminal:
            return None
        return s.moved_to(JobState.FAILED, note=reason, reason=reason, failure_kind=kind)

    try:
        update_status(store, ref, change)
    except NotFoundError:
        return
    except DamagedRunFileError as exc:
        _replace_damaged(store, ref, f"{reason}; {exc}", pool)


def _replace_damaged(store: Store, ref: RunRef, reason: str, pool: str) -> None:
    log.warning("%s: its status.json is damaged; replaced by a failed one: %s", ref.id, reason)
    _, etag = store.get(RUNS, ref.status_blob)
    now = utc_now()
    failed = RunStatus(
        id=ref.id, experiment=ref.experiment, pool=pool, submitted_at=now, updated_at=now
    ).moved_to(JobState.FAILED, note=reason, reason=reason, failure_kind=FailureKind.INFRASTRUCTURE)
    # under the ETag read just now: a repair by hand in between wins
    store.put(RUNS, ref.status_blob, failed.model_dump_json(indent=2).encode(), if_match=etag)
