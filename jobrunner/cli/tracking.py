"""The `jobrunner metrics` and `jobrunner ui` commands, and the metric lines that `status`,
`submit --wait` and `list --metric` add; registered on the `jobrunner` app by `register`.

Metrics are read from the run's MLflow run (`jobrunner.tracking.runs`); a run that is not
tracked says so and shows nothing else.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from jobrunner.errors import NotFoundError, TrainstackError
from jobrunner.store.client import Store
from jobrunner.store.status import RunStatus, find_run, read_status
from jobrunner.tracking.metrics_view import last_values_line, params_line, plots, run_metrics, summary_table
from jobrunner.tracking.runs import RunMetrics

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
NOT_TRACKED = "not tracked: its pool has no tracking server (docs/metrics.md)"


def _render(metrics: RunMetrics | None, run_id: str, state: str, *, width: int, color: bool) -> Group:
    if metrics is None:
        return Group(Text(f"{run_id} ({state}): {NOT_TRACKED}"))
    parts: list[object] = [Text(f"{run_id} ({state})")]
    if metrics.params:
        parts.append(Text(params_line(metrics)))
    parts.append(summary_table(metrics))
    if any(metrics.metrics.values()):
        parts.append(Text.from_ansi(plots(metrics, width=width - 2, color=color)))
    return Group(*parts)  # type: ignore[arg-type]


def _snapshot(store: Store, run_id: str) -> tuple[RunStatus, RunMetrics | None]:
    ref = find_run(store, run_id)
    status, _ = read_status(store, ref)
    return status, run_metrics(store, run_id)


def metrics_command(
    run_id: str, *, follow: bool, as_json: bool, interval_s: float, store: Store, console: Console
) -> None:
    """Print (or, with `follow`, keep printing until the run ends) the run's metrics."""
    status, metrics = _snapshot(store, run_id)
    if as_json:
        _print_json_snapshot(metrics, status, pretty=not follow)
        last = metrics
        while follow and not status.state.terminal:
            time.sleep(interval_s)
            status, metrics = _snapshot(store, run_id)
            if metrics != last or status.state.terminal:
                _print_json_snapshot(metrics, status, pretty=False)
                last = metrics
        return

    def render() -> Group:
        return _render(metrics, run_id, status.state.value, width=console.width, color=console.is_terminal)

    if not follow:
        console.print(render())
        return
    if console.is_terminal:
        with Live(render(), console=console, refresh_per_second=2) as live:
            while not status.state.terminal:
                time.sleep(interval_s)
                status, metrics = _snapshot(store, run_id)
                live.update(render())
        return
    # piped: a new picture each time there is something new, ending with the final one
    console.print(render())
    last = metrics
    while not status.state.terminal:
        time.sleep(interval_s)
        status, metrics = _snapshot(store, run_id)
        if metrics != last or status.state.terminal:
            console.print(render())
            last = metrics


def _print_json_snapshot(metrics: RunMetrics | None, status: RunStatus, *, pretty: bool) -> None:
    import sys

    data = (
        metrics.model_dump(mode="json")
        if metrics is not None
        else {"run": status.id, "params": {}, "metrics": {}}
    )
    sys.stdout.write(json.dumps(data, indent=2 if pretty else None) + "\n")
    sys.stdout.flush()


def last_metrics_line(store: Store, run_id: str) -> str | None:
    """`metrics: loss=0.13 ...` for a run, or None when it has none (untracked, none logged,
    or its tracking server does not answer: a status must not fail over metrics)."""
    try:
        metrics = run_metrics(store, run_id)
    except TrainstackError:
        return None
    if metrics is None or not metrics.last():
        return None
    return "metrics: " + last_values_line(metrics)


def metric_column(store: Store, run_id: str, name: str) -> str:
    """The last value of metric `name` of a run, for `list --metric`; empty when it has none."""
    try:
        metrics = run_metrics(store, run_id)
    except (TrainstackError, NotFoundError):
        return ""
    value = metrics.last().get(name) if metrics is not None else None
    return "" if value is None else f"{value:.6g}"


class MetricsTicker:
    """While `submit --wait` follows a run: every `interval_s`, one line of the last metric
    values, when they changed, through `say`."""

    def __init__(
        self, store: Store, run_id: str, say: Callable[[str], None], interval_s: float = 5.0
    ) -> None:
        self._store, self._run_id, self._say, self._interval = store, run_id, say, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics", daemon=True)
        self._last: str | None = None

    def __enter__(self) -> MetricsTicker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._tick()  # the final values, once the run ended

    def _tick(self) -> None:
        line = last_metrics_line(self._store, self._run_id)
        if line is not None and line != self._last:
            self._last = line
            self._say(line)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()


def register(app: typer.Typer) -> None:
    """Add `metrics` and `ui` to the `jobrunner` app."""
    from jobrunner.cli import main as cli

    @app.command()
    @cli.guarded
    def metrics(
        run_id: Annotated[str, typer.Argument(help="The run id.")],
        follow: Annotated[
            bool,
            typer.Option("--follow", "-f", help="Refresh until the run ends (--json: a line per change)."),
        ] = False,
        interval_s: Annotated[float, typer.Option("--interval-s", help="Seconds between refreshes.")] = 1.0,
        as_json: JsonFlag = False,
    ) -> None:
        """Show a run's MLflow metrics: last, min and max of each, and a plot over steps.

        `--json` prints `{"run": id, "params": {...}, "metrics": {name: [{"step", "value",
        "timestamp"}, ...]}}`.

        Example:

            jobrunner metrics run-20261121-204800-ab12cd --follow
        """
        client = cli._client()
        metrics_command(
            run_id, follow=follow, as_json=as_json, interval_s=interval_s, store=client.store, console=cli.out
        )

    @app.command()
    @cli.guarded
    def ui(
        port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
        host: Annotated[
            str,
            typer.Option("--host", help="Address to listen on (loopback by default: no one else sees it)."),
        ] = "127.0.0.1",
    ) -> None:
        """Serve a read-only web page over the store: runs, their logs, metrics and outputs.

        Example:

            jobrunner ui --port 8765     # then open http://127.0.0.1:8765/
        """
        from jobrunner.ui import serve

        client = cli._client()
        cli.err.print(f"jobrunner ui on http://{host}:{port}/ (Ctrl-C to stop)", markup=False)
        serve(client.store, host=host, port=port)
