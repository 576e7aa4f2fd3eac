"""`trainstack validate`: check stack files offline, before `pulumi up` ever sees them."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from components.skus import find_sku
from jobrunner.errors import ConfigError, Problem
from trainstack.stack import LoadedStack, load_stack, stack_names


def check_stack(name: str, project_dir: Path) -> list[Problem]:
    """Every problem with one stack: its file and job files (schema, names, secrets, references),
    then what the program itself refuses when run offline. Empty when the stack is good."""
    from trainstack.plan import record_stack

    try:
        stack = load_stack(name, project_dir)
        retired = retired_sizes(stack)
        if retired:
            return retired
        record_stack(name, project_dir, stack=stack)
    except ConfigError as exc:
        return list(exc.problems)
    except ValueError as exc:
        return [Problem(str(project_dir / "stacks" / f"Pulumi.{name}.yaml"), "", str(exc))]
    return []


def retired_sizes(stack: LoadedStack) -> list[Problem]:
    """Clusters on a GPU size Azure has retired: it can no longer be created."""
    problems = []
    for i, cluster in enumerate(stack.config.clusters):
        sku = find_sku(cluster.vm_size)
        if sku is not None and sku.is_retired():
            problems.append(
                Problem(
                    str(stack.path),
                    f"config.trainstack:clusters[{i}].vmSize",
                    f"{sku.name} was retired on {sku.retired}",
                    f"use {sku.successor}",
                )
            )
    return problems


def print_problems(console: Console, problems: list[Problem]) -> None:
    """One line per problem: where (file: field), what, and the fix."""
    for p in problems:
        where = ": ".join(x for x in (p.file, p.field) if x)
        fix = f" [yellow]({escape(p.fix)})[/yellow]" if p.fix else ""
        console.print(
            f"[red]error[/red] {escape(where)}: {escape(p.message)}{fix}", highlight=False, soft_wrap=True
        )


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(
        stack: Annotated[
            list[str] | None,
            typer.Option("--stack", "-s", help="stack name (repeatable); default: every stack"),
        ] = None,
        project_dir: Annotated[
            Path, typer.Option("--project-dir", help="the project root (holds stacks/)")
        ] = Path("."),
        as_json: bool = typer.Option(False, "--json", help="print a JSON report"),
    ) -> None:
        """Check stack files: schema, GPU sizes, node counts, names Azure restricts, plain-text
        secrets, and clusters, datastores and job files that runs refer to.

        Each problem names the file, the field and the fix. Exits 1 on any problem.

        Example:

            trainstack validate --stack dev
        """
        console = Console(stderr=False)
        names = stack or stack_names(project_dir)
        if not names:
            console.print(f"no stack files under {project_dir / 'stacks'}", markup=False)
            raise typer.Exit(1)
        results = {name: check_stack(name, project_dir) for name in names}
        if as_json:
            report = [
                {"stack": n, "ok": not ps, "problems": [asdict(p) for p in ps]} for n, ps in results.items()
            ]
            typer.echo(json.dumps({"stacks": report}, indent=2))
        else:
            for name, problems in results.items():
                if problems:
                    print_problems(console, problems)
                    console.print(f"[red]✗[/red] stack {escape(name)}: {len(problems)} problem(s)")
                else:
                    console.print(f"[green]✓[/green] stack {escape(name)} is valid")
        if any(results.values()):
            raise typer.Exit(1)
