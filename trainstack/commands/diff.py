"""`trainstack diff A B`: how two stacks' declared resources differ, property by property, and
which differences replace a resource rather than update it. A side may be a stack at a git
ref (`prod@origin/main`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from jobrunner.errors import TrainstackError


def _value(value: Any) -> Text:
    # Values are data: brackets in a stack's values print as they are.
    return Text(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def _table(title: str, *columns: str) -> Table:
    # Fold long values (resource ids) instead of cutting them off in a narrow terminal or a pipe.
    table = Table(title=escape(title), title_justify="left")
    for column in columns:
        table.add_column(escape(column), overflow="fold")
    return table


def diff(
    a: Annotated[
        str, typer.Argument(help="first stack, e.g. dev, or a stack at a git ref: `prod@origin/main`")
    ],
    b: Annotated[str, typer.Argument(help="second stack, e.g. prod (or `prod@<ref>`)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    project_dir: Annotated[Path, typer.Option("--project-dir", help="the project's root folder")] = Path("."),
) -> None:
    """Compare two stacks offline: resources only in A, only in B, and for the resources both
    declare every input that differs, with its property path and both values, and whether
    it is updated in place or replaced (with the create-only property that forces it).

    `stack@ref` is the stack as it was at a git ref, planned from a temporary worktree:
    `trainstack diff prod@origin/main prod` is what a change does to prod.

    Exits 2 when a stack or a ref cannot be read.

    Example:

        trainstack diff dev prod

        trainstack diff prod@origin/main prod

        trainstack diff dev prod --json | jq '.changed[] | select(.action == "replace") | .name_b'
    """
    from trainstack.baseref import StackRef, plan_at_ref
    from trainstack.diff import diff_stacks
    from trainstack.review import plan_stack

    try:
        left_ref, right_ref = StackRef.parse(a), StackRef.parse(b)
        left, right = (
            plan_at_ref(s.stack, s.ref, project_dir) if s.ref else plan_stack(s.stack, project_dir)
            for s in (left_ref, right_ref)
        )
    except TrainstackError as err:
        typer.echo(f"cannot compare {a!r} and {b!r}:\n{err}", err=True)
        raise typer.Exit(2) from None
    result = diff_stacks(
        left.resources, right.resources, name_a=a, name_b=b,
        env_a=left.context.environment, env_b=right.context.environment,
        same_stack=left_ref.stack == right_ref.stack, options=right.options,
    )  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(result.as_json(), indent=2, sort_keys=True) + "\n")
        return
    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped into a pull request or a log: keep property paths and values whole.
        console = Console(highlight=False, width=200)
    if result.empty:
        console.print(f"{a} and {b} declare the same resources with the same inputs.", markup=False)
        return
    for title, only in ((f"only in {a}", result.only_a), (f"only in {b}", result.only_b)):
        if only:
            table = _table(title, "type", "name")
            for r in only:
                table.add_row(Text(r.type), Text(r.name))
            console.print(table)
    for change in result.changed:
        forced = {r.path for r in change.replace}
        table = _table(f"{change.action}: {change.name} ({change.type})", "property", a, b, "forces replace")
        for c in change.changes:
            table.add_row(Text(c.path), _value(c.a), _value(c.b), "yes" if c.path in forced else "")
        console.print(table)
        if change.replace:
            why = "; ".join(r.describe().replace("`", "") for r in change.replace)
            first = " (deleted first, then created)" if change.delete_before_replace else ""
            console.print(f"  replaced{first}: {why}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)
