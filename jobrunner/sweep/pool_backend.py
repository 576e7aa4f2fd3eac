"""A sweep's trials as ordinary runs of the pool its parent runs on (`TrialBackend`).

    backend = PoolTrialBackend(store, parent_status)
    run_id = backend.submit_trial(3, job, {"lr": 0.01})   # `<sweep id>-t3`, queued like any job

- `submit_trial`: the trial's command job is submitted as any job is (`jobrunner.client.
  queue_run`): its run id follows from the sweep's and the index, so a second call finds
  the run and submits nothing; the code and local inputs uploaded once with the parent are
  copied to the trial's own folder; its parameters become its tags (on its status and on
  its MLflow run) beside `trainstack.sweep` and `trainstack.trial`; its metrics are logged
  synchronously (`SYNC_LOGGING`).
- `trial_state`: the run's status (preparing counts as running).
- `metric_history`: the primary metric from the trial's MLflow run on the pool's tracking
  server (`jobrunner.tracking.runs`); empty until the trial has one. TrackingError when the
  server does not answer: the pass ends there and the next one asks again.
- `cancel_trial`: the pool's cancel (`Client.cancel`).

Failure modes: StoreError and TrackingError end the pass (the next one repeats it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from jobrunner.api import JobState
from jobrunner.client import Client, new_run_status, queue_run
from jobrunner.errors import NotFoundError
from jobrunner.spec.job import JobSpec
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import RunRef, RunStatus, read_status
from jobrunner.sweep.driver import TrialState
from jobrunner.sweep.load import render_value
from jobrunner.sweep.parent import trial_id
from jobrunner.tracking.runs import TrackingRecord, metric_values, read_record

SWEEP_TAG = "trainstack.sweep"
TRIAL_TAG = "trainstack.trial"
SYNC_LOGGING = {"MLFLOW_ENABLE_ASYNC_LOGGING": "false"}
_STATES: dict[JobState, TrialState] = {
    JobState.QUEUED: "queued", JobState.PREPARING: "running", JobState.RUNNING: "running",
    JobState.SUCCEEDED: "succeeded", JobState.FAILED: "failed", JobState.CANCELED: "canceled",
}  # fmt: skip

log = logging.getLogger(__name__)


class PoolTrialBackend:
    """The trials of the sweep whose parent status is `parent` (see the module docstring)."""

    def __init__(self, store: Store, parent: RunStatus) -> None:
        self.store, self.parent = store, parent
        self._records: dict[str, TrackingRecord] = {}  # written once per run: read once

    def _ref(self, run_id: str) -> RunRef:
        return RunRef(experiment=self.parent.experiment, id=run_id)

    def submit_trial(self, index: int, job: Any, params: Mapping[str, Any]) -> str:
        run_id = trial_id(self.parent.id, index)
        ref = self._ref(run_id)
        try:
            if read_status(self.store, ref)[0].state is not JobState.QUEUED:
                return run_id  # submitted and taken in before
        except NotFoundError:
            pass
        spec: JobSpec = job
        tags = {**(spec.tags or {}), **{k: render_value(v) for k, v in params.items()},
                SWEEP_TAG: self.parent.id, TRIAL_TAG: str(index)}  # fmt: skip
        # The pool's asynchronous logging loses what a script that never ends its MLflow run
        # logged last (its batch is sent after the interpreter began to shut down); a trial's
        # objective is often exactly that one value. A file may still turn it on itself.
        env = {**SYNC_LOGGING, **spec.environment_variables}
        spec = spec.model_copy(update={"tags": tags, "environment_variables": env})
        shared = self.parent.ref
        if spec.code:
            self.store.put(RUNS, ref.code_blob, self.store.get(RUNS, shared.code_blob)[0])
        for name, data in spec.data_inputs.items():
            if data.location.kind == "local":
                self._copy_tree(shared.inputs_prefix(name), ref.inputs_prefix(name))
        status = new_run_status(
            spec, self.parent.pool, run_id, experiment=self.parent.experiment, parent=self.parent.id,
            tags={k: str(v) for k, v in tags.items()},
        )  # fmt: skip
        queue_run(self.store, spec, status)
        return run_id

    def _copy_tree(self, source: str, dest: str) -> None:
        for blob in self.store.list(RUNS, source):
            self.store.put(RUNS, dest + blob.name.removeprefix(source), self.store.get(RUNS, blob.name)[0])

    def trial_state(self, run_id: str) -> TrialState:
        try:
            return _STATES[read_status(self.store, self._ref(run_id))[0].state]
        except NotFoundError:
            return "failed"  # its files were deleted: it will never run

    def metric_history(self, run_id: str, metric: str) -> Sequence[float]:
        record = self._records.get(run_id) or read_record(self.store, self._ref(run_id))
        if record is None:
            return []
        self._records[run_id] = record
        return metric_values(record, metric)  # TrackingError ends the pass: a value is never lost

    def cancel_trial(self, run_id: str, reason: str) -> None:
        log.info("sweep %s: canceling %s: %s", self.parent.id, run_id, reason)
        with contextlib.suppress(NotFoundError):  # its files were deleted: nothing runs
            Client(self.store, pool=self.parent.pool).cancel(run_id)
