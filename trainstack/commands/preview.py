"""`trainstack preview`: what a stack would declare, offline (no Azure, no Pulumi CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from jobrunner.errors import ConfigError, Problem
from trainstack.commands.validate import print_problems
from trainstack.plan import StackPlan, record_stack


def plan_tree(plan: StackPlan) -> Tree:
    """The resources as `pulumi preview` nests them: each under its parent."""
    roots = plan.children(None)
    tree = Tree(f"[bold]{escape(plan.stack)}[/bold]")

    def add(node: Tree, urn: str) -> None:
        for child in plan.children(urn):
            add(node.add(f"{escape(child.type)} [cyan]{escape(child.name)}[/cyan]"), child.urn)

    for root in roots:
        add(tree.add(f"{escape(root.type)} [cyan]{escape(root.name)}[/cyan]"), root.urn)
    return tree


def register(app: typer.Typer) -> None:
    @app.command()
    def preview(
        stack: str = typer.Option(..., "--stack", "-s", help="stack name (stacks/Pulumi.<name>.yaml)"),
        project_dir: Annotated[
            Path, typer.Option("--project-dir", help="the project root (holds __main__.py)")
        ] = Path("."),
        as_json: bool = typer.Option(
            False, "--json", help='print {"stack", "resources": [{type, name, parent, inputs}]}'
        ),
    ) -> None:
        """Run the Pulumi program offline with a stack's config and list every resource it
        would declare, as a tree of type and name under its parent. Secrets are masked.

        Example:

            trainstack preview --stack dev

            trainstack preview --stack prod --json > prod-plan.json
        """
        console = Console()
        try:
            plan = record_stack(stack, project_dir)
        except ConfigError as exc:
            print_problems(console, list(exc.problems))
            raise typer.Exit(1) from None
        except ValueError as exc:
            print_problems(console, [Problem(None, "", str(exc))])
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(plan.to_json(), indent=2, sort_keys=True))
            return
        if not console.is_terminal:
            # Piped into a pull request or a log: keep each resource on one line.
            console = Console(width=240)
        console.print(plan_tree(plan))
        custom = sum(1 for r in plan.resources if r.custom)
        console.print(f"{custom} resources to create (offline plan, nothing was sent to Azure)")
