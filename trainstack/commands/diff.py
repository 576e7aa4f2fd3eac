"""`trainstack diff A B`: how two stacks' declared resources differ, property by property."""

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
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def diff(
    a: Annotated[str, typer.Argument(help="first stack, e.g. dev")],
    b: Annotated[str, typer.Argument(help="second stack, e.g. prod")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    project_dir: Annotated[Path, typer.Option("--project-dir", help="the project's root folder")] = Path("."),
) -> None:
    """Compare two stacks offline: resources only in A, only in B, and for the resources both
    declare every input that differs, with its property path and both values.

    Exits 2 when a stack cannot be read.

    Example:

        trainstack diff dev prod

        trainstack diff dev prod --json | jq '.changed[].name_b'
    """
    from trainstack.diff import diff_stacks
    from trainstack.review import plan_stack

    try:
        left, right = plan_stack(a, project_dir), plan_stack(b, project_dir)
    except TrainstackError as err:
        typer.echo(f"cannot compare {a!r} and {b!r}:\n{err}", err=True)
        raise typer.Exit(2) from None
    result = diff_stacks(
        left.resources, right.resources, name_a=a, name_b=b,
        env_a=left.context.environment, env_b=right.context.environment,
    )  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(result.as_json(), indent=2, sort_keys=True) + "\n")
        return
    console = Console(highlight=False)
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
        table = _table(f"changed: {escape(change.name)} ({escape(change.type)})", "property", a, b)
        for c in change.changes:
            table.add_row(Text(c.path), _value(c.a), _value(c.b))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)
