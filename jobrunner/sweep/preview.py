"""What a sweep would run, without running anything: `jobrunner submit sweep.yml --dry-run`.

    preview = sweep_preview(spec, trials=5)    -> {"sampling", "objective", "limits", "trials"}

The first trials' points are drawn with the file's seed (or 0 when it has none, so the preview
is the same every time it is asked), each with its command as the trial would run it (inputs
in place, data inputs at their placeholder paths, as `--dry-run` shows a command job). The
Bayesian sampler's later points depend on results, so its preview shows the first draws only.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from jobrunner.plan.dryrun import placeholder_paths
from jobrunner.plan.launch_plan import render_command
from jobrunner.sweep.load import SweepSpec
from jobrunner.sweep.sampling import make_sampler

PREVIEW_SEED = 0


def sweep_preview(spec: SweepSpec, *, trials: int = 5) -> dict[str, Any]:
    """The sweep's settings and its first `trials` points, as plain data."""
    sweep = spec.file
    sampler = make_sampler(sweep, seed=PREVIEW_SEED)
    points = []
    for index in range(min(trials, sweep.limits.max_total_trials)):
        point = sampler.draw(index, [])
        if point is None:
            break
        job = spec.trial_job(point.params)
        command = render_command(job.command, job, placeholder_paths(job))
        points.append({"index": index, "params": point.params, "command": command})
    return {
        "sampling": sweep.sampling_algorithm.model_dump(exclude_none=True),
        "search_space": {name: p.model_dump() for name, p in sweep.search_space.items()},
        "objective": sweep.objective.model_dump(),
        "early_termination": sweep.early_termination.model_dump(exclude_none=True)
        if sweep.early_termination
        else None,
        "limits": sweep.limits.model_dump(exclude_none=True),
        "notes": list(spec.notes),
        "trials": points,
    }


def render_preview(preview: dict[str, Any]) -> RenderableType:
    """A person's view of `sweep_preview`: the settings, then a table of the first trials."""
    objective = preview["objective"]
    head = Text(
        f"sweep: {preview['sampling']['type']} sampling, {objective['goal']} {objective['primary_metric']}, "
        + ", ".join(f"{k} {v}" for k, v in preview["limits"].items())
    )
    policy = preview["early_termination"]
    lines: list[RenderableType] = [head]
    if policy:
        rest = ", ".join(f"{k} {v}" for k, v in policy.items() if k != "type")
        lines.append(Text(f"early termination: {policy['type']}" + (f", {rest}" if rest else "")))
    table = Table(title=f"first {len(preview['trials'])} trials", title_justify="left")
    table.add_column("trial", justify="right")
    for name in preview["search_space"]:
        table.add_column(name)
    table.add_column("command")
    for trial in preview["trials"]:
        values = [Text(_show(trial["params"][name])) for name in preview["search_space"]]
        table.add_row(str(trial["index"]), *values, Text(trial["command"]))
    lines.append(table)
    return Group(*lines)


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
