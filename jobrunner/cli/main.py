"""`jobrunner`: submit and watch jobs, run agents and local pools, move data.

A thin layer over `jobrunner.Client`: every command prints for people by default (tables,
colour only on a terminal) and JSON with `--json`; every error is one line naming the file,
field or fix, with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from jobrunner.api import JobState
from jobrunner.cli.help import flags_take_no_value
from jobrunner.client import Client, default_pool
from jobrunner.errors import ConfigError, TrainstackError
from jobrunner.scheduler.protocol import ProtocolSettings
from jobrunner.store.client import DEFAULT_DATASTORE
from jobrunner.store.status import RunStatus

flags_take_no_value()
_PROTOCOL = ProtocolSettings()  # the protocol's defaults, as `--help` says them

app = typer.Typer(
    name="jobrunner",
    help="Run Azure ML command-job files on a pool of agents (GPU pool, local pool).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
local_pool_app = typer.Typer(help="A pool of agents on this machine.", no_args_is_help=True)
data_app = typer.Typer(help="Move files to and from datastores.", no_args_is_help=True)
pool_app = typer.Typer(help="Look at a pool.", no_args_is_help=True)
app.add_typer(local_pool_app, name="local-pool")
app.add_typer(data_app, name="data")
app.add_typer(pool_app, name="pool")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
PoolOpt = Annotated[
    str | None, typer.Option("--pool", help="Pool name (default: `local` or $JOBRUNNER_POOL).")
]
STATE_STYLE = {"succeeded": "green", "failed": "red", "canceled": "yellow", "running": "cyan"}
EXIT_FOR = {JobState.SUCCEEDED: 0, JobState.FAILED: 1, JobState.CANCELED: 2}


def guarded(fn: F) -> F:
    """Errors a user can hit become one line on stderr and exit code 1 (130 on Ctrl-C)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TrainstackError as exc:
            err.print(f"error: {one_line(exc)}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def one_line(exc: TrainstackError) -> str:
    """The error as one line: a file's problems after its name once, separated by `; `."""
    problems = exc.problems if isinstance(exc, ConfigError) else ()
    files = {p.file for p in problems}
    if len(problems) < 2 or len(files) != 1:
        return "; ".join(str(exc).splitlines())
    rest = [str(replace(p, file=None)) for p in problems]
    return f"{problems[0].file}: " + "; ".join(rest) if problems[0].file else "; ".join(rest)


def _client(pool: str | None = None) -> Client:
    return Client(pool=pool or default_pool())


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def status_json(status: RunStatus) -> dict[str, Any]:
    return status.model_dump(mode="json")


def _status_json(client: Client, status: RunStatus) -> dict[str, Any]:
    """`status_json`, with a sweep's trials and best (`jobrunner.sweep.report`)."""
    data = status_json(status)
    if status.kind == "sweep":
        from jobrunner.sweep.report import sweep_report

        report = sweep_report(client.store, status)
        data.update(report.as_json() if report else {"trials": [], "best": None})
    return data


def _state(state: JobState) -> str:
    return f"[{STATE_STYLE.get(state.value, 'white')}]{state.value}[/]"


def _parse_sets(values: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE", fix="e.g. --set inputs.epochs=3")
        pairs[key.strip()] = value
    return pairs


def _with_progress(label: str, work: Callable[[Callable[[int, int], None]], int]) -> int:
    """Run `work(progress)` under a progress bar on stderr (shown only on a terminal)."""
    with _progress() as bar:
        task = bar.add_task(label, total=None)
        return work(lambda done, total: bar.update(task, completed=done, total=total))


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=err, transient=False, disable=not err.is_terminal,
    )  # fmt: skip


# ------------------------------------------------------------------------- jobs
@app.command()
@guarded
def submit(
    file: Annotated[Path, typer.Argument(help="An Azure ML CLI v2 command-job YAML file.")],
    pool: PoolOpt = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a field: inputs.x=v (repeatable).")] = [],  # noqa: B006
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow state and logs; exit with the job's outcome.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show the plan; nothing runs.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Submit a job file to a pool and print its id.

    Example:

        jobrunner submit examples/hello/job.yml --set inputs.greeting=hi --wait
    """
    overrides = _parse_sets(set_)
    if _is_sweep(file):
        _sweep(file, pool=pool, dry_run=dry_run, wait=wait, as_json=as_json)
        return
    if dry_run:
        _dry_run(file, overrides, as_json)
        return
    client = _client(pool)
    from jobrunner.spec.job import load_job

    spec = load_job(file, overrides)
    notes = [client.check_capacity(spec, client.pool, source=str(file))]
    notes.append(client.check_environment(spec, client.pool, source=str(file)))
    for line in [n for n in notes if n] + list(spec.notes):
        if not as_json:
            err.print(f"note: {line}", markup=False, soft_wrap=True)
    status = client.submit_spec(spec)
    _submitted(client, status, wait, as_json, lambda: _follow(client, status.id, logs=not as_json))


def _submitted(
    client: Client, status: RunStatus, wait: bool, as_json: bool, follow: Callable[[], RunStatus]
) -> None:
    """Print the new run's id (or JSON); with `wait`, `follow` it and exit with its outcome."""
    if as_json and not wait:
        _print_json({"id": status.id, "experiment": status.experiment, "pool": status.pool})
        return
    if not as_json:
        out.print(status.id)
    if wait:
        final = follow()
        if as_json:
            _print_json({"id": final.id, **_status_json(client, final)})
        raise typer.Exit(EXIT_FOR.get(final.state, 1))


def _is_sweep(file: Path) -> bool:
    from jobrunner.errors import ConfigError
    from jobrunner.files import read_mapping
    from jobrunner.sweep.load import is_sweep_file

    try:
        return is_sweep_file(read_mapping(file))
    except ConfigError:
        return False  # the job loader reports what is wrong with the file


def _sweep(file: Path, *, pool: str | None, dry_run: bool, wait: bool, as_json: bool) -> None:
    from jobrunner.sweep.load import load_sweep
    from jobrunner.sweep.preview import render_preview, sweep_preview

    if dry_run:
        spec = load_sweep(file)
        preview = sweep_preview(spec)
        if as_json:
            _print_json(preview)
        else:
            for line in spec.notes:
                err.print(f"note: {line}", markup=False)
            out.print(render_preview(preview))
        return
    client = _client(pool)
    notes: list[str] = []
    status = client.submit_sweep(file, notes=notes)
    for line in notes if not as_json else []:
        err.print(f"note: {line}", markup=False, soft_wrap=True)
    trials = lambda: _follow_sweep(client, status.id, show=not as_json)  # noqa: E731
    _submitted(client, status, wait, as_json, trials)


def _follow_sweep(client: Client, sweep_id: str, *, show: bool, poll_s: float = 1.0) -> RunStatus:
    """Wait for the sweep to end, showing its table of trials: live on a terminal, else each
    time it changes."""
    import time

    from rich.live import Live

    from jobrunner.sweep.report import render_trials, sweep_report

    def snapshot() -> tuple[RunStatus, Any]:
        s = client.status(sweep_id)
        return s, sweep_report(client.store, s)

    status, report = snapshot()
    if show and out.is_terminal:
        with Live(render_trials(status, report), console=out, refresh_per_second=2) as live:
            while not status.state.terminal:
                time.sleep(poll_s)
                status, report = snapshot()
                live.update(render_trials(status, report))
        return status
    shown = None
    while True:
        seen = (status.state, report.record if report else None)
        if show and report is not None and seen != shown:
            out.print(render_trials(status, report))
            shown = seen
        if status.state.terminal:
            return status
        time.sleep(poll_s)
        status, report = snapshot()


def _dry_run(file: Path, overrides: dict[str, str], as_json: bool) -> None:
    from jobrunner.plan.dryrun import dry_run, render_plans
    from jobrunner.spec.job import load_job

    spec = load_job(file, overrides)
    plans = dry_run(spec, spec.instance_count)
    # What a submit would say (the pool's own checks aside: a dry run asks no pool), then
    # each node's notes.
    for line in [*spec.notes, *(n for p in plans for n in p.notes)]:
        err.print(f"note: {line}", markup=False, soft_wrap=True)
    if as_json:
        _print_json(render_plans(plans, as_json=True))
    else:
        out.print(render_plans(plans, as_json=False), markup=False)


def _follow(client: Client, run_id: str, *, logs: bool) -> RunStatus:
    def on_status(s: RunStatus) -> None:
        where = ", ".join(n.name for n in s.nodes)
        err.print(
            f"[dim]{s.id}[/] {_state(s.state)} attempt {s.attempt}"
            + (f" on {escape(where)}" if where else "")
        )

    def sink(stream: str, text: str) -> None:
        for line in text.splitlines():
            # A job's output is data: brackets in it (`[bold]`, `[/tmp/x]`) print as they are.
            text_line = (
                f"[dim]{escape(stream)}|[/] {escape(line)}" if out.is_terminal else f"{stream}| {line}"
            )
            out.print(text_line, markup=out.is_terminal, soft_wrap=True)

    from jobrunner.cli.tracking import MetricsTicker

    with MetricsTicker(client.store, run_id, lambda line: err.print(line, markup=False)):
        final = client.follow(run_id, sink if logs else None, on_status=on_status)
    if final.reason:
        err.print(f"{_state(final.state)}: {escape(final.reason)}")
    return final


@app.command()
@guarded
def status(
    run_id: Annotated[str, typer.Argument(help="The run id `submit` printed.")], as_json: JsonFlag = False
) -> None:
    """Show a run's state, nodes, exit code and reason.

    Example:

        jobrunner status run-20261121-204800-ab12cd --json
    """
    client = _client()
    s = client.status(run_id)
    if as_json:
        _print_json(_status_json(client, s))
        return
    out.print(
        f"{s.id}  {_state(s.state)}  attempt {s.attempt}/{s.max_attempts}  experiment {escape(s.experiment)}"
    )
    if s.exit_code is not None:
        out.print(f"exit code {s.exit_code}  {s.reason or ''}", markup=False)
    elif s.reason:
        out.print(s.reason, markup=False)
    waiting = client.waiting_reason(s) if s.state is JobState.QUEUED else None
    if waiting:
        out.print(waiting, markup=False)
    from jobrunner.cli.tracking import last_metrics_line

    metrics_line = last_metrics_line(client.store, s.id)
    if metrics_line:
        out.print(metrics_line, markup=False)
    table = Table("rank", "node", "exit code", "failure", "reason")
    for n in s.nodes:
        table.add_row(str(n.rank), Text(n.name), "" if n.exit_code is None else str(n.exit_code),
                      n.failure_kind.value if n.failure_kind else "", Text(n.reason or ""))  # fmt: skip
    if s.nodes:
        out.print(table)
    if s.kind == "sweep":
        from jobrunner.sweep.report import render_trials, sweep_report

        report = sweep_report(client.store, s)
        if report is not None:
            out.print(render_trials(s, report))
    for t in s.transitions:
        out.print(f"  {t.at}  {t.state.value:<10} attempt {t.attempt}  {t.note or ''}", markup=False)


@app.command("list")
@guarded
def list_(
    experiment: Annotated[str | None, typer.Option("--experiment", help="Only this experiment.")] = None,
    metric: Annotated[
        list[str],
        typer.Option("--metric", help="Add a column with the last value of this metric (repeatable)."),
    ] = [],  # noqa: B006
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first.

    Example:

        jobrunner list --experiment mnist --metric loss
    """
    from jobrunner.cli.tracking import metric_column

    client = _client()
    runs = client.list(experiment)
    columns = {r.id: {m: metric_column(client.store, r.id, m) for m in metric} for r in runs}
    if as_json:
        _print_json([status_json(r) | ({"metrics": columns[r.id]} if metric else {}) for r in runs])
        return
    # The id is what every other command takes: never cut it. It starts with the submission
    # time (run-YYYYMMDD-HHMMSS-...), so no separate column for that.
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("id", no_wrap=True)
    table.add_column("experiment", overflow="fold")
    for name in ("state", "attempt", "nodes", *metric):
        table.add_column(name, no_wrap=True)
    for r, depth in _under_sweeps(runs):
        cells = [columns[r.id][m] for m in metric]
        shown = ("└ " * depth) + r.id
        table.add_row(
            shown, Text(r.experiment), _state(r.state), str(r.attempt), str(r.instance_count), *cells
        )
    out.print(table)


def _under_sweeps(runs: list[RunStatus]) -> list[tuple[RunStatus, int]]:
    """The runs in their order, each sweep's trials right under it (by trial number) at depth 1."""
    ids = {r.id for r in runs}
    trials: dict[str, list[RunStatus]] = {}
    for r in runs:
        if r.parent in ids:
            trials.setdefault(r.parent, []).append(r)
    out: list[tuple[RunStatus, int]] = []
    for r in runs:
        if r.parent in ids:
            continue
        out.append((r, 0))
        for t in sorted(trials.get(r.id, []), key=lambda t: int(t.tags.get("trainstack.trial", "0"))):
            out.append((t, 1))
    return out


@app.command()
@guarded
def logs(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    attempt: Annotated[int | None, typer.Option("--attempt", help="Attempt (default: the latest).")] = None,
) -> None:
    """Print a run's logs (every node and rank; `stream| line`).

    Example:

        jobrunner logs run-20261121-204800-ab12cd --follow
    """
    client = _client()
    if follow:
        _follow(client, run_id, logs=True)
        return
    for stream, text in sorted(client.logs(run_id, attempt=attempt).items()):
        for line in text.splitlines():
            sys.stdout.write(f"{stream}| {line}\n")


@app.command()
@guarded
def cancel(run_id: Annotated[str, typer.Argument(help="The run id.")], as_json: JsonFlag = False) -> None:
    """Cancel a run: a queued one at once, a running one within seconds.

    Example:

        jobrunner cancel run-20261121-204800-ab12cd
    """
    s = _client().cancel(run_id)
    if as_json:
        _print_json(status_json(s))
    else:
        what = (
            "canceled"
            if s.state is JobState.CANCELED
            else "cancel requested"
            if not s.state.terminal
            else s.state.value
        )
        out.print(f"{s.id}: {what}", markup=False)


@app.command()
@guarded
def outputs(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    download: Annotated[Path, typer.Option("--download", help="Folder to download the outputs into.")],
) -> None:
    """Download a run's outputs (each output, and ./outputs and ./logs of its code) into a folder.

    Example:

        jobrunner outputs run-20261121-204800-ab12cd --download ./out
    """
    client = _client()
    count = _with_progress("outputs", lambda p: client.download_outputs(run_id, download, progress=p))
    out.print(f"{count} file(s) in {download}", markup=False)


# ------------------------------------------------------------------------- agent
@app.command()
@guarded
def agent(
    pool: Annotated[
        str | None, typer.Option("--pool", help="The pool whose queue to serve (required without --config).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Agent name (default: the host name).")] = None,
    address: Annotated[
        str, typer.Option("--address", help="Address other gang members reach.")
    ] = "127.0.0.1",
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where runs are staged.")] = None,
    heartbeat_s: Annotated[
        float | None,
        typer.Option(
            "--heartbeat-s",
            help="How soon an idle agent first looks for new work after it reported. "
            f"[default: {_PROTOCOL.beat_idle_s:g}]",
        ),
    ] = None,
    stale_after_s: Annotated[
        float | None,
        typer.Option(
            "--stale-after-s",
            help="Silence after which a node counts as lost (set, a node writes every fifth of it). "
            f"[default: {_PROTOCOL.stale_after_s:g}]",
        ),
    ] = None,
    status_poll_s: Annotated[
        float | None,
        typer.Option("--status-poll-s", help="How often a running job's status is checked. [default: 2]"),
    ] = None,
    sync_s: Annotated[
        float | None,
        typer.Option(
            "--sync-s", help="How often outputs (checkpoints) go up while a job runs. [default: 15]"
        ),
    ] = None,
    terminate_grace_s: Annotated[
        float | None,
        typer.Option(
            "--terminate-grace-s", help="Seconds from SIGTERM to SIGKILL when a job stops. [default: 10]"
        ),
    ] = None,
    scheduled_events_url: Annotated[
        str | None,
        typer.Option(
            "--scheduled-events-url",
            envvar="JOBRUNNER_SCHEDULED_EVENTS_URL",
            help="Azure Scheduled Events endpoint to watch for evictions; on a Spot VM "
            "http://169.254.169.254/metadata/scheduledevents. Unset: none watched.",
        ),
    ] = None,
    doorbell: Annotated[
        Path | None,
        typer.Option("--doorbell", help="Unix socket a submit rings to wake this agent (local pools)."),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            envvar="JOBRUNNER_TRACKING_URI",
            help="MLflow tracking server the jobs log to (MLFLOW_TRACKING_URI); `none` or unset: none.",
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="Agent config file (YAML, JSON or cloud-init); other options ignored."),
    ] = None,
    check_config: Annotated[
        Path | None, typer.Option("--check-config", help="Check an agent config file, print it and exit.")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar="JOBRUNNER_LOG_LEVEL",
            help="debug, info, warning or error (default: info, or the config file's logLevel; "
            "this and --log-file apply with --config too).",
        ),
    ] = None,
    log_file: Annotated[
        Path | None,
        typer.Option("--log-file", help="Log to this file (rotated, 0600) instead of stderr or the journal."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Serve a pool: take jobs from its queue and run them, until SIGTERM or Ctrl-C.

    With --config (what a GPU pool node runs), the settings come from the agent config file,
    node setup runs once per boot first, and the pool's size is published for submit.

    Example:

        jobrunner agent --pool a100-spot --name vm-0 --address 10.0.0.4

        jobrunner agent --config /etc/jobrunner/agent.yaml

        jobrunner agent --check-config custom-data.yaml
    """
    if check_config is not None:
        _check_agent_config(check_config, as_json)
        return
    if config_file is not None:
        _serve_from_config(config_file, log_level, log_file)
        return
    if pool is None:
        raise ConfigError("no pool to serve", fix="pass --pool NAME or --config FILE")
    import socket

    from jobrunner.node.agent import Agent, AgentSettings
    from jobrunner.node.agent_logging import configure_agent_logging
    from jobrunner.store.client import Store, home_dir

    configure_agent_logging(log_level or "info", log_file=log_file)

    agent_name = name or socket.gethostname()
    config = AgentSettings(
        pool=pool, name=agent_name, address=address, work_dir=work_dir or home_dir() / "agent" / agent_name,
        scheduled_events_url=scheduled_events_url, doorbell=doorbell,
        tracking_uri=None if tracking_uri in (None, "", "none") else tracking_uri,
    ).with_timings(
        heartbeat_s=heartbeat_s, stale_after_s=stale_after_s, status_poll_s=status_poll_s, sync_s=sync_s,
        terminate_grace_s=terminate_grace_s,
    )  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err.print(f"agent {agent_name} serving pool {pool} (pid {os.getpid()})", markup=False)
    Agent(Store.from_env(), config).serve(stop)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _check_agent_config(path: Path, as_json: bool) -> None:
    from jobrunner.node.config import load_agent_config, summary
    from jobrunner.node.isolation import redact_store

    config = load_agent_config(path)
    if as_json:
        shown = config.model_dump(mode="json", by_alias=True)
        shown["store"] = redact_store(shown["store"])  # as the table: no account key, no SAS
        _print_json({"file": str(path), "valid": True, "config": shown})
        return
    table = Table("setting", "value", title=Text(f"agent config {path}: valid"))
    for key, value in summary(config).items():
        table.add_row(key, Text(str(value)))
    out.print(table)


def _serve_from_config(path: Path, log_level: str | None, log_file: Path | None) -> None:
    from jobrunner.node.agent import Agent
    from jobrunner.node.agent_logging import configure_agent_logging
    from jobrunner.node.config import load_agent_config
    from jobrunner.node.pool_agent import (
        agent_settings,
        connect_store,
        node_facts,
        node_setup_once,
        publish_pool_size,
    )

    config = load_agent_config(path)
    configure_agent_logging(log_level or config.log_level, log_file=log_file)
    stop = _stop_on_signals()
    if node_setup_once(config):
        err.print("node setup done", markup=False)
    store = connect_store(config)
    facts = node_facts(config)
    publish_pool_size(store, config, facts)
    loop = agent_settings(config, source=str(path))
    err.print(f"agent {loop.name} serving pool {loop.pool} (pid {os.getpid()})", markup=False)
    Agent(store, loop, facts=facts).serve(stop)


# -------------------------------------------------------------------- local pool
@local_pool_app.command("start")
@guarded
def local_pool_start(
    nodes: Annotated[int, typer.Option("--nodes", help="How many agents.")] = 2,
    pool: Annotated[str, typer.Option("--pool", help="Pool name.")] = "local",
    log_level: Annotated[
        str, typer.Option("--log-level", help="The agents' log level: debug, info, warning or error.")
    ] = "info",
    as_json: JsonFlag = False,
) -> None:
    """Start agents on this machine (detached; each logs to .trainstack/pool/<agent>.log).

    Example:

        jobrunner local-pool start --nodes 2 --log-level debug
    """
    from jobrunner.local.pool import start_local_pool

    state = start_local_pool(nodes, pool, log_level=log_level)
    if as_json:
        _print_json(_local_pool_json(state))
    else:
        out.print(
            f"local pool {state.name}: " + ", ".join(f"{a.name} (pid {a.pid})" for a in state.agents),
            markup=False,
        )


def _local_pool_json(state: Any) -> dict[str, Any]:
    from jobrunner.local.pool import agent_log_file, agent_output_file
    from jobrunner.node.isolation import redact_store

    return {
        "name": state.name,
        "store": redact_store(state.store),
        "agents": [
            {
                "name": a.name, "pid": a.pid,
                "log_file": str(agent_log_file(a.name)), "output_file": str(agent_output_file(a.name)),
            }
            for a in state.running()
        ],
    }  # fmt: skip


@local_pool_app.command("status")
@guarded
def local_pool_status(
    pool: Annotated[str, typer.Option("--pool", help="Pool name.")] = "local", as_json: JsonFlag = False
) -> None:
    """Show the local pool's store and running agents, with each agent's log file.

    Example:

        jobrunner local-pool status --json
    """
    from jobrunner.local.pool import agent_log_file, read_local_pool

    state = read_local_pool(pool)
    if state is None:
        if as_json:
            _print_json({"name": pool, "store": None, "agents": []})
            return
        raise ConfigError(f"no local pool {pool!r} is running", fix="`jobrunner local-pool start --nodes 2`")
    if as_json:
        _print_json(_local_pool_json(state))
        return
    out.print(
        f"local pool {state.name}, store {state.store.split(';BlobEndpoint=')[-1].split(';')[0]}",
        markup=False,
    )
    for a in state.agents:
        alive = "running" if a in state.running() else "gone"
        out.print(
            f"  {a.name}  pid {a.pid}  {alive}  log {agent_log_file(a.name)}", markup=False, soft_wrap=True
        )


@local_pool_app.command("stop")
@guarded
def local_pool_stop(
    pool: Annotated[
        str | None, typer.Option("--pool", help="Only this pool (default: every local pool).")
    ] = None,
) -> None:
    """Stop the local pool's agents, and the local Azurite.

    Example:

        jobrunner local-pool stop
    """
    from jobrunner.local.pool import stop_local_pool

    stopped = stop_local_pool(pool)
    out.print(f"stopped {', '.join(stopped)}" if stopped else "no local pool was running")


# -------------------------------------------------------------------------- pool
@pool_app.command("status")
@guarded
def pool_status(pool: PoolOpt = None, as_json: JsonFlag = False) -> None:
    """Show a pool's nodes (state, the run they hold, heartbeat age), its scheduler and what
    the queue waits for.

    Example:

        jobrunner pool status --pool a100-spot
    """
    view = _client(pool).pool_status(pool)
    report = view.report
    if as_json:
        _print_json(
            {
                "name": view.name, "max_nodes": view.max_nodes, "queue_length": view.queue_length,
                "leader": report.leader if report else None,
                "waiting": list(report.waiting) if report else [],
                "waiting_total": view.waiting_total, "nodes_short": report.nodes_short if report else 0,
                "demand_nodes": report.demand_nodes if report else 0,
                "nodes": [asdict(n) for n in view.nodes],
            }
        )  # fmt: skip
        return
    leader = f"scheduled by {report.leader}" if report else "no scheduler yet"
    out.print(
        f"pool {view.name}: {len(view.nodes)} node(s), at most {view.max_nodes or '?'}; {leader}; "
        f"{view.waiting_total} run(s) waiting, {view.queue_length} submission(s) not taken in yet",
        markup=False,
    )
    if report is not None:
        for line in report.waiting:
            out.print(f"  {line}", markup=False)
        if report.nodes_short:
            out.print(
                f"  the pool is {report.nodes_short} node(s) short of its largest waiting job", markup=False
            )
    table = Table("node", "state", "run", "attempt", "heartbeat", "address")
    for n in view.nodes:
        table.add_row(
            *(
                Text(v)
                for v in (
                    n.name,
                    n.state,
                    n.run or "",
                    str(n.attempt or ""),
                    f"{n.heartbeat_age_s:.0f} s ago",
                    n.address,
                )
            )  # fmt: skip
        )
    out.print(table)


# -------------------------------------------------------------------------- data
DatastoreOpt = Annotated[str, typer.Option("--datastore", help="Datastore name.")]
DatastorePathOpt = Annotated[str, typer.Option("--path", help="Path inside the datastore.")]
DataConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A pool's agent config (YAML, JSON or cloud-init): its store and datastore map are used.",
    ),
]


def _data_client(config_file: Path | None) -> Client:
    """The client of `jobrunner data`: the environment's store, or an agent config's store and map."""
    if config_file is None:
        return _client()
    from jobrunner.node.config import load_agent_config
    from jobrunner.node.pool_agent import connect_store
    from jobrunner.store.datastores import Datastores

    config = load_agent_config(config_file)
    datastores = Datastores.from_config(config, source=str(config_file))
    return Client(connect_store(config), pool=config.pool, datastores=datastores)


@data_app.command("upload")
@guarded
def data_upload(
    source: Annotated[Path, typer.Argument(help="A local file or folder.")],
    datastore: DatastoreOpt = DEFAULT_DATASTORE,
    path: DatastorePathOpt = "",
    config_file: DataConfigOpt = None,
) -> None:
    """Upload a file or folder to a datastore (then use `azureml://datastores/<d>/paths/<p>`).

    The datastore is the blob container named after it (`training_data`: `training-data`),
    or, with --config, the one a pool's agent config maps it to, in that config's store.

    Example:

        jobrunner data upload ./iris --datastore workspaceblobstore --path datasets/iris

        jobrunner data upload ./iris --datastore training_data --config agent.yaml
    """
    client = _data_client(config_file)
    count = _with_progress(
        f"upload {source}", lambda p: client.upload_data(source, datastore=datastore, path=path, progress=p)
    )
    out.print(f"{count} file(s) -> azureml://datastores/{datastore}/paths/{path.strip('/')}", markup=False)


@data_app.command("download")
@guarded
def data_download(
    dest: Annotated[Path, typer.Argument(help="Local folder to download into.")],
    datastore: DatastoreOpt = DEFAULT_DATASTORE,
    path: DatastorePathOpt = "",
    config_file: DataConfigOpt = None,
) -> None:
    """Download a datastore path (file or folder) into a local folder.

    The datastore is found as `jobrunner data upload` puts it (see its help).

    Example:

        jobrunner data download ./iris --datastore workspaceblobstore --path datasets/iris
    """
    client = _data_client(config_file)
    count = _with_progress(
        f"download {path}", lambda p: client.download_data(dest, datastore=datastore, path=path, progress=p)
    )
    out.print(f"{count} file(s) in {dest}", markup=False)


from jobrunner.cli.tracking import register as _register_tracking  # noqa: E402 - it uses the app above

_register_tracking(app)


def main() -> None:
    app()
