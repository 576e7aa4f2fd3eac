"""What `jobrunner metrics`, `status`, `submit --wait` and `list --metric` show of a run's
MLflow metrics: a last/min/max table, a terminal plot per metric over steps (plotext), and
the short `name=value` line of last values.

    run_metrics(store, "run-...")  -> RunMetrics | None   (None: the run is not tracked)
    summary_table(metrics)         -> rich Table
    plots(metrics, width=..)       -> text with one plot per metric

Failure modes: NotFoundError for an unknown run; TrackingError when the run's tracking
server does not answer.
"""

from __future__ import annotations

from rich import box
from rich.table import Table

from jobrunner.local.tracking_server import revive_local_tracking
from jobrunner.store.client import Store, home_dir
from jobrunner.store.status import find_run
from jobrunner.tracking.runs import RunMetrics, read_record, read_run_metrics

PLOT_HEIGHT = 12


def run_metrics(store: Store, run_id: str) -> RunMetrics | None:
    """The run's params and metrics, or None when the run has no MLflow run (yet, or its pool
    tracks nothing)."""
    ref = find_run(store, run_id)
    record = read_record(store, ref)
    if record is None:
        return None
    revive_local_tracking(record.uri, home_dir())
    return read_run_metrics(record, ref.id)


def _number(value: float) -> str:
    return f"{value:.6g}"


def summary_table(metrics: RunMetrics) -> Table:
    """One row per metric: points, last step, last, min and max."""
    table = Table(box=box.SIMPLE_HEAD, title=f"metrics of {metrics.run}")
    table.add_column("metric", no_wrap=True)
    for name in ("points", "last step", "last", "min", "max"):
        table.add_column(name, justify="right", no_wrap=True)
    last = metrics.last()
    for name, points in sorted(metrics.metrics.items()):
        if not points:
            continue
        values = [p.value for p in points]
        table.add_row(
            name, str(len(points)), str(points[-1].step), _number(last[name]), _number(min(values)),
            _number(max(values)),
        )  # fmt: skip
    return table


def params_line(metrics: RunMetrics) -> str:
    return "params: " + ", ".join(f"{k}={v}" for k, v in metrics.params.items()) if metrics.params else ""


def last_values_line(metrics: RunMetrics, *, limit: int = 6) -> str:
    """`loss=0.13 acc=0.9 (+2 more)`: what follows a run's state while it goes."""
    last = metrics.last()
    shown = [f"{name}={_number(value)}" for name, value in list(last.items())[:limit]]
    more = len(last) - limit
    return " ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def plots(metrics: RunMetrics, *, width: int, color: bool) -> str:
    """One plotext line plot per metric over its steps, stacked."""
    import plotext as plt  # type: ignore[import-untyped]  # plotext ships no type information

    out: list[str] = []
    for name, points in sorted(metrics.metrics.items()):
        if not points:
            continue
        plt.clf()
        plt.plotsize(max(width, 40), PLOT_HEIGHT)
        if not color:
            plt.theme("clear")
        plt.plot([p.step for p in points], [p.value for p in points], marker="braille")
        plt.title(name)
        plt.xlabel("step")
        out.append(plt.build())
    return "\n".join(out)
