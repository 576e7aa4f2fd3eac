"""The pool scheduler's view of a run's own files: how an attempt ended, and whether a queued
run is still wanted, or can never start (`refuse`: a gang larger than the pool's largest size).

    judge = RunJudge(store, pool="a100-spot", tracking_uri=None)
    Leader(pool_store, name, settings, judge=judge, admit=judge.admit, refuse=judge.refuse)

The protocol (`jobrunner.scheduler.protocol`) knows attempts, owners and results; the run's
status document (`jobrunner.store.status`, what users read) knows the nodes' reports, the retry
budget and a cancel. When the leader finds an attempt over, `RunJudge` settles the status
document (`jobrunner.scheduler.outcome.settle`: lost and silent nodes written in, then the retry
policy) and answers with what the protocol must do next: `ok`, `fail`, `canceled`, `retry`
(the user's budget, or an attempt that never reached its nodes) or `requeue` (free).
Settling is idempotent: a leader that crashed after writing the status and before its own
document asks again and gets the same answer from the status it wrote.

A run that ended has its MLflow run ended too, on the judge's own thread, after the pass
that settled it.

Failure modes: StoreError propagates (the protocol retries the conclusion on its next pass);
a run whose files are gone or damaged is failed with the reason, never retried forever; a
tracking server that fails leaves the MLflow run saying it runs on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from jobrunner.api import FailureKind, JobState
from jobrunner.errors import NotFoundError, TrainstackError
from jobrunner.scheduler.outcome import settle
from jobrunner.scheduler.protocol import RunDoc
from jobrunner.spec.job import JobSpec, Retry
from jobrunner.store.client import RUNS, Store
from jobrunner.store.poison import fail_damaged_run
from jobrunner.store.pool_config import read_pool_config
from jobrunner.store.status import (
    DamagedRunFileError,
    RunRef,
    RunStatus,
    find_run,
    parse_run_file,
    read_status,
    update_status,
)
from jobrunner.tracking.runs import finish_tracking_run

_POOL_CONFIG_TTL_S = 60.0


def run_ref(store: Store, doc: RunDoc) -> RunRef:
    """Where the run's files are: from its document, or its id's pointer blob (NotFoundError)."""
    return RunRef(experiment=doc.experiment, id=doc.id) if doc.experiment else find_run(store, doc.id)


class RunJudge:
    """`Leader.judge` and `Leader.admit` over the runs' status documents."""

    def __init__(self, store: Store, pool: str, *, tracking_uri: str | None = None) -> None:
        self.store, self.pool, self.tracking_uri = store, pool, tracking_uri
        self._size: tuple[float, int | None] | None = None  # (read at, the pool's largest size)
        self._finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-finish")

    def refuse(self, doc: RunDoc) -> str | None:
        """Why the run just taken in can never start, its status failed with that reason: a gang
        larger than the pool's published largest size (`submit` checks the same, but a message
        can come from an older client, another tool, or before the pool shrank)."""
        largest = self._largest_size()
        if largest is None or doc.nodes <= largest:
            return None
        reason = (
            f"the job asks for {doc.nodes} nodes and pool {self.pool!r} has at most {largest}: "
            f"set `resources.instance_count` to {largest} or less, or submit to a larger pool"
        )
        try:
            ref = run_ref(self.store, doc)
        except NotFoundError:
            return reason
        fail_damaged_run(self.store, ref, reason, pool=self.pool, kind=FailureKind.USER)
        return reason

    def _largest_size(self) -> int | None:
        """The pool's `max_nodes` as published, read at most once a minute (None: not said)."""
        now = time.monotonic()
        if self._size is None or now - self._size[0] >= _POOL_CONFIG_TTL_S:
            config = read_pool_config(self.store, self.pool)
            self._size = (now, config.max_nodes if config else None)
        return self._size[1]

    def admit(self, doc: RunDoc) -> bool:
        """Whether the queued run is still wanted: not canceled, not gone, its status readable
        (a damaged one is failed with the reason, never assigned)."""
        try:
            ref = run_ref(self.store, doc)
            status, _ = read_status(self.store, ref)
        except NotFoundError:
            return False
        except DamagedRunFileError as exc:
            fail_damaged_run(self.store, ref, str(exc), pool=self.pool)
            return False
        return not (status.state.terminal or status.cancel_requested)

    def __call__(self, doc: RunDoc, verdict: str, results: dict[str, str]) -> str:
        try:
            ref = run_ref(self.store, doc)
        except NotFoundError:
            return "fail"  # its files were deleted: nothing to run again
        try:
            retry = self._retry(doc, ref)
            owners = tuple(name for name, _ in doc.owners)
            status = update_status(
                self.store, ref,
                lambda s: settle(s, retry, attempt=doc.attempt, owners=owners,
                                 results=results, undelivered=verdict == "undelivered"),
            )  # fmt: skip
        except (DamagedRunFileError, NotFoundError) as exc:
            fail_damaged_run(self.store, ref, str(exc), pool=self.pool)
            return "fail"
        self._finish_tracking(ref, status)
        return _next_step(status, doc)

    def _retry(self, doc: RunDoc, ref: RunRef) -> Retry:
        """The run's retry policy: as submitted, or from its spec for a submission that did not
        say it (DamagedRunFileError, NotFoundError)."""
        if doc.retry is not None:
            return Retry(max_attempts=doc.retry[0], no_retry_exit_codes=doc.retry[1])
        return parse_run_file(JobSpec, self.store.get(RUNS, ref.spec_blob)[0], ref.spec_blob).trainstack.retry

    def close(self, patience_s: float) -> None:
        """Wait up to `patience_s` for the MLflow runs still being ended; the rest say they run on."""
        done = threading.Event()
        self._finisher.submit(done.set)
        done.wait(patience_s)
        self._finisher.shutdown(wait=False, cancel_futures=True)

    def _finish_tracking(self, ref: RunRef, status: RunStatus) -> None:
        """End the run's MLflow run on the judge's own thread: a call to the tracking server
        must not hold up the scheduler's pass (what it costs is not the next job's wait)."""
        if self.tracking_uri is not None and status.state.terminal:
            self._finisher.submit(_finish_quietly, self.store, ref, status.state)


def _finish_quietly(store: Store, ref: RunRef, state: JobState) -> None:
    with contextlib.suppress(TrainstackError):  # the MLflow run only says it runs on
        finish_tracking_run(store, ref, state)


def _next_step(status: RunStatus, doc: RunDoc) -> str:
    """What the protocol does after the attempt `doc` names, read off the settled status: its
    count of free requeues moves with the status document's, so both reach the cap together."""
    if status.state is JobState.SUCCEEDED:
        return "ok"
    if status.state is JobState.CANCELED:
        return "canceled"
    if status.state.terminal:
        return "fail"
    return "requeue" if status.free_requeues > doc.free_requeues else "retry"
