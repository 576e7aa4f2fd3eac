"""Driving a sweep: one pass of its parent run over its trials.

    record = SweepRecord.start(seed=1234, now=t0)
    record = drive(sweep, record, backend, now=t)    # call again and again until record.done

Each pass reads every unfinished trial's state and primary metric, stops trials that the
early-termination policy condemns (with its reason), ends the sweep at `limits.timeout`
(canceling what still runs), starts new trials while fewer than `max_concurrent_trials` are
unfinished and fewer than `max_total_trials` were started, and keeps the best trial.

All a pass needs is the `SweepRecord`, plain data kept with the parent run: whoever holds it
can drive the next pass, so losing the driver loses nothing. A pass may be cut short at any
point; the next one repeats what it did not record. That is safe because the backend's
`submit_trial` is idempotent per trial index (a trial's run id follows from the sweep's and
its index), the trial's point depends only on the seed, the index and the finished trials
recorded before it, and canceling a finished trial is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from jobrunner.sweep.load import SweepSpec
from jobrunner.sweep.sampling import Finished, make_sampler
from jobrunner.sweep.termination import should_stop

TrialState = Literal["queued", "running", "succeeded", "failed", "canceled"]
_FINISHED = ("succeeded", "failed", "canceled")


class TrialBackend(Protocol):
    """What a sweep needs of the pool its trials run on."""

    def submit_trial(self, index: int, job: Any, params: Mapping[str, Any]) -> str:
        """Submit trial `index` (a `JobSpec`) and return its run id. Idempotent per index:
        a second call for the same index returns the same run and submits nothing."""

    def trial_state(self, run_id: str) -> TrialState:
        """The run's state, as the pool reports it."""

    def metric_history(self, run_id: str, metric: str) -> Sequence[float]:
        """The values of `metric` the run has logged, in order (empty if none yet)."""

    def cancel_trial(self, run_id: str, reason: str) -> None:
        """Cancel the run with `reason`; nothing if it has already finished."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrialRecord(_Record):
    index: int
    run_id: str
    params: dict[str, Any]
    units: dict[str, float]
    state: TrialState = "queued"
    metric: float | None = None  # the best value of the primary metric so far
    intervals: int = 0  # values of the primary metric logged
    started_at: datetime
    finished_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in _FINISHED


class SweepRecord(_Record):
    seed: int
    started_at: datetime
    trials: list[TrialRecord] = []
    exhausted: bool = False  # the sampler has no point left (a grid fully covered)
    done: bool = False
    reason: str | None = None  # why the sweep ended
    best: int | None = None  # index of the best trial

    @classmethod
    def start(cls, *, seed: int, now: datetime) -> SweepRecord:
        return cls(seed=seed, started_at=now)

    def best_trial(self) -> TrialRecord | None:
        return None if self.best is None else self.trials[self.best]

    @property
    def settled(self) -> bool:
        """Done, and every trial it started has ended: the parent run may conclude."""
        return self.done and all(t.finished for t in self.trials)


def cancel_sweep(record: SweepRecord, backend: TrialBackend, *, reason: str) -> SweepRecord:
    """End the sweep now: every unfinished trial is canceled with `reason`."""
    record = record.model_copy(deep=True)
    for trial in record.trials:
        if not trial.finished:
            backend.cancel_trial(trial.run_id, reason)
            trial.stop_reason = trial.stop_reason or reason
    record.done, record.reason = True, record.reason if record.done else reason
    return record


def refresh(record: SweepRecord, backend: TrialBackend, *, now: datetime) -> SweepRecord:
    """A done sweep's unfinished trials, read again until they have ended (canceled trials
    take a moment to stop)."""
    record = record.model_copy(deep=True)
    for trial in record.trials:
        if not trial.finished:
            state = backend.trial_state(trial.run_id)
            trial.state = state
            if state in _FINISHED:
                trial.finished_at = now
    return record


def drive(spec: SweepSpec, record: SweepRecord, backend: TrialBackend, *, now: datetime) -> SweepRecord:
    """One pass; returns the new record (the given one is not changed). A pass on a done
    sweep changes nothing."""
    if record.done:
        return record
    sweep = spec.file
    goal = sweep.objective.goal
    metric_name = sweep.objective.primary_metric
    record = record.model_copy(deep=True)
    trials = record.trials
    grown: list[TrialRecord] = []
    histories: dict[int, list[float]] = {}
    for trial in trials:
        if trial.finished:
            continue
        state = backend.trial_state(trial.run_id)
        history = list(backend.metric_history(trial.run_id, metric_name))
        if len(history) > trial.intervals:
            grown.append(trial)
        trial.intervals = len(history)
        trial.metric = _best(goal, history)
        trial.state = state
        if state in _FINISHED:
            trial.finished_at = now
        histories[trial.index] = history

    policy = sweep.early_termination
    if policy is not None and grown:
        for t in trials:
            if t.intervals and t.index not in histories:
                histories[t.index] = list(backend.metric_history(t.run_id, metric_name))
        named = {str(index): values for index, values in histories.items() if values}
        for trial in grown:
            if trial.finished:
                continue
            reason = should_stop(policy, goal, str(trial.index), named)
            if reason:
                backend.cancel_trial(trial.run_id, reason)
                trial.stop_reason = reason

    limits = sweep.limits
    if limits.timeout is not None and (now - record.started_at).total_seconds() >= limits.timeout:
        for trial in trials:
            if not trial.finished:
                backend.cancel_trial(trial.run_id, f"the sweep reached its timeout of {limits.timeout} s")
                trial.stop_reason = trial.stop_reason or "sweep timeout"
        record.reason = f"timeout: {limits.timeout} s"
        record.done = True
    else:
        _start_trials(spec, record, backend, now)
        if all(t.finished for t in trials) and (record.exhausted or len(trials) >= limits.max_total_trials):
            record.done = True
            record.reason = "every trial finished"
    record.best = _best_index(goal, trials)
    return record


def _start_trials(spec: SweepSpec, record: SweepRecord, backend: TrialBackend, now: datetime) -> None:
    limits = spec.file.limits
    cap = limits.max_concurrent_trials or limits.max_total_trials
    sampler = make_sampler(spec.file, seed=record.seed)
    while not record.exhausted and len(record.trials) < limits.max_total_trials:
        if sum(not t.finished for t in record.trials) >= cap:
            return
        finished = [Finished(t.units, t.metric) for t in record.trials if t.finished]
        index = len(record.trials)
        point = sampler.draw(index, finished)
        if point is None:
            record.exhausted = True
            return
        run_id = backend.submit_trial(index, spec.trial_job(point.params), point.params)
        record.trials.append(
            TrialRecord(index=index, run_id=run_id, params=point.params, units=point.units, started_at=now)
        )


def _best(goal: str, values: Sequence[float]) -> float | None:
    finite = [v for v in values if v == v]  # NaN is no value
    if not finite:
        return None
    return min(finite) if goal == "minimize" else max(finite)


def _best_index(goal: str, trials: Sequence[TrialRecord]) -> int | None:
    scored = [t for t in trials if t.metric is not None]
    if not scored:
        return None
    sign = 1 if goal == "minimize" else -1
    return min(scored, key=lambda t: (sign * t.metric, t.index)).index  # type: ignore[operator]
