"""The demo: distributed PyTorch training on a 2-node pool on this machine, end to end.

`run_demo()` starts a local pool of 2 agents (over the local Azurite, or `JOBRUNNER_STORE`),
submits `examples/ddp/job.yml`, follows its state and logs, shows the final metrics and where
the outputs are, and stops the pool, whatever happened. Returns the exit code: 0 when the
job succeeded, 1 when it failed or the pool could not start (one line saying why).
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jobrunner.api import JobState
from jobrunner.client import Client
from jobrunner.errors import TrainstackError
from jobrunner.local.azurite import project_root
from jobrunner.local.pool import start_local_pool, stop_local_pool
from jobrunner.store.client import home_dir
from jobrunner.store.status import RunStatus

POOL = "demo"
NODES = 2
JOB = project_root() / "examples" / "ddp" / "job.yml"


def run_demo(console: Console | None = None) -> int:
    """Run the demo (see the module docstring); returns the process exit code."""
    console = console or Console(highlight=False)
    try:
        console.rule("trainstack demo: PyTorch DDP on a 2-node local pool")
        pool = start_local_pool(NODES, POOL)
        console.print(f"pool [bold]{POOL}[/]: " + ", ".join(f"{a.name} (pid {a.pid})" for a in pool.agents))
        client = Client(pool=POOL)
        run = client.submit(JOB)
        console.print(f"submitted [bold]{JOB.relative_to(project_root())}[/] as [bold]{run.id}[/]")

        def show(stream: str, text: str) -> None:
            for line in text.splitlines():
                console.print(f"{stream}| {line}", markup=False, soft_wrap=True)

        def progress(s: RunStatus) -> None:
            where = f" on {', '.join(n.name for n in s.nodes)}" if s.nodes else ""
            console.print(f"[cyan]{s.state.value}[/] (attempt {s.attempt}){where}")

        final = client.follow(run.id, show, on_status=progress)
        return _summary(console, client, final)
    except TrainstackError as exc:
        console.print(f"[red]demo failed:[/] {escape(str(exc))}")
        return 1
    finally:
        stop_local_pool(POOL, stop_store=False)
        console.print(f"pool {POOL} stopped")


def _summary(console: Console, client: Client, final: RunStatus) -> int:
    if final.state is not JobState.SUCCEEDED:
        console.print(f"[red]{final.state.value}[/]: {escape(final.reason or '')}")
        return 1
    dest = home_dir() / "demo" / final.id
    client.download_outputs(final.id, dest)
    metrics_file = dest / "model" / "metrics.json"
    table = Table(
        "metric", "value", title=f"{final.id} succeeded on {', '.join(n.name for n in final.nodes)}"
    )
    if metrics_file.exists():
        for key, value in json.loads(metrics_file.read_text()).items():
            table.add_row(key, str(value))
    console.print(table)
    console.print(f"outputs: {escape(str(dest))} (also in the store under runs/{final.ref.prefix}outputs/)")
    console.print(f"again: jobrunner logs {final.id}  |  jobrunner outputs {final.id} --download DIR")
    return 0
