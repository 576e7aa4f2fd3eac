"""What a sweep's parent run shows: its trials and its best, for `status`, `submit --wait`,
`list` and the web view.

    report = sweep_report(store, status)     -> SweepReport | None (None: not a sweep)
    report.as_json()                         -> {"trials": [...], "best": {...}, ...}
    render_trials(status, report)            -> a rich table, the best trial marked

Read from the sweep's record (`jobrunner.sweep.parent`): what the pool's leader last saw of
each trial, at most a pass (a few seconds) behind the trials' own status documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from jobrunner.errors import NotFoundError
from jobrunner.store.client import Store
from jobrunner.store.status import RunStatus
from jobrunner.sweep.driver import SweepRecord, TrialRecord
from jobrunner.sweep.load import render_value
from jobrunner.sweep.models import SweepFile
from jobrunner.sweep.parent import read_parent

BEST_MARK = "*"
_STYLE = {"succeeded": "green", "failed": "red", "canceled": "yellow", "running": "cyan"}


@dataclass(frozen=True)
class SweepReport:
    file: SweepFile
    record: SweepRecord

    @property
    def metric(self) -> str:
        return self.file.objective.primary_metric

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.file.search_space)

    def as_json(self) -> dict[str, Any]:
        """`trials` and `best` as `jobrunner status --json` prints them."""
        best = self.record.best_trial()
        return {
            "objective": self.file.objective.model_dump(),
            "trials": [_trial_json(t) for t in self.record.trials],
            "best": None
            if best is None
            else {"id": best.run_id, "params": best.params, "metric": best.metric},
            "sweep_done": self.record.done,
            "sweep_reason": self.record.reason,
            "max_total_trials": self.file.limits.max_total_trials,
            "max_concurrent_trials": self.file.limits.max_concurrent_trials,
        }


def _trial_json(t: TrialRecord) -> dict[str, Any]:
    finished = t.finished_at.isoformat() if t.finished_at else None
    return {
        "id": t.run_id, "index": t.index, "params": t.params, "state": t.state, "metric": t.metric,
        "started_at": t.started_at.isoformat(), "finished_at": finished, "stop_reason": t.stop_reason,
    }  # fmt: skip


def sweep_report(store: Store, status: RunStatus) -> SweepReport | None:
    """The sweep's report, or None for a run that is not a sweep (or whose record is gone)."""
    if status.kind != "sweep":
        return None
    try:
        parent, _ = read_parent(store, status.ref)
    except NotFoundError:
        return None
    return SweepReport(parent.spec().file, parent.record)


def render_trials(status: RunStatus, report: SweepReport) -> Group:
    """A line on the sweep, then one row per trial: its parameters, state and primary metric,
    the best one marked."""
    record, limits = report.record, report.file.limits
    running = sum(t.state == "running" for t in record.trials)
    head = (
        f"{status.id}  {status.state.value}  {len(record.trials)}/{limits.max_total_trials} trials, "
        f"{running} running (at most {limits.max_concurrent_trials or limits.max_total_trials} at once), "
        f"{report.file.objective.goal} {report.metric}"
    )
    best = record.best_trial()
    # a trial's run id is the sweep's and `-t<i>`: the table names it by `t<i>` alone, so that
    # its parameters, state, metric and note fit a terminal's width
    table = Table(box=box.SIMPLE_HEAD, caption=f"trial t<i> is run {status.id}-t<i>", caption_justify="left")
    table.add_column("", no_wrap=True, min_width=1)
    table.add_column("trial", no_wrap=True, min_width=len(f"t{len(record.trials)}"))
    for name in report.parameters:
        table.add_column(name, overflow="fold")
    table.add_column("state", no_wrap=True, min_width=len("succeeded"))
    table.add_column(report.metric, justify="right", no_wrap=True, min_width=8)
    table.add_column("note", overflow="fold")
    for t in record.trials:
        mark = BEST_MARK if best is not None and t.index == best.index else ""
        table.add_row(
            mark, f"t{t.index}", *(Text(_show(t.params.get(n))) for n in report.parameters),
            Text(t.state, style=_STYLE.get(t.state, "")), "" if t.metric is None else f"{t.metric:.4g}",
            Text(t.stop_reason or ""),
        )  # fmt: skip
    lines: list[Any] = [Text(head), table]
    if best is not None:
        lines.append(Text(f"best ({BEST_MARK}): {best.run_id}  {report.metric} {best.metric:.6g}"))
    return Group(*lines)


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else render_value(value)
