"""`trainstack schemas`: regenerate or check the committed JSON Schemas (stack and job files)
from the pydantic models they describe, so that editors and reviewers see the real contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

SchemaFactory = Callable[[], dict[str, Any]]


def schema_factories() -> dict[str, SchemaFactory]:
    """Committed schema path (from the project root) -> the function that generates it."""
    from jobrunner.node.config import agent_json_schema
    from jobrunner.spec.job import job_json_schema
    from jobrunner.sweep.load import sweep_json_schema
    from trainstack.stack import stack_json_schema

    return {
        "schemas/stack.schema.json": stack_json_schema,
        "schemas/job.schema.json": job_json_schema,
        "schemas/sweep.schema.json": sweep_json_schema,
        "schemas/agent.schema.json": agent_json_schema,
    }


def render(schema: dict[str, Any]) -> str:
    """Canonical text: sorted keys, two-space indent, final newline (diffs stay small)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale_schemas(project_dir: Path) -> list[str]:
    """The committed schemas that differ from what the models generate (or are missing)."""
    out = []
    for rel, factory in schema_factories().items():
        path = project_dir / rel
        if not path.exists() or path.read_text(encoding="utf-8") != render(factory()):
            out.append(rel)
    return out


def write_schemas(project_dir: Path) -> list[str]:
    """Write every schema; returns the paths that changed."""
    changed = stale_schemas(project_dir)
    for rel, factory in schema_factories().items():
        path = project_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(factory()), encoding="utf-8")
    return changed


def register(app: typer.Typer) -> None:
    @app.command()
    def schemas(
        check: bool = typer.Option(False, "--check", help="exit 1 if a committed schema is out of date"),
        write: bool = typer.Option(False, "--write", help="regenerate the committed schemas"),
        project_dir: Annotated[
            Path, typer.Option("--project-dir", help="the project root (holds schemas/)")
        ] = Path("."),
        as_json: bool = typer.Option(False, "--json", help="print a JSON report"),
    ) -> None:
        """Regenerate or check the JSON Schemas of stack and job files (`schemas/*.schema.json`).

        Without a flag, says which schemas are up to date.

        Example:

            trainstack schemas --check    # in CI: fail when a model changed but its schema did not

            trainstack schemas --write    # after changing components/config.py or jobrunner/spec/models.py
        """
        console = Console()
        if check and write:
            console.print("choose one of --check and --write")
            raise typer.Exit(2)
        stale = write_schemas(project_dir) if write else stale_schemas(project_dir)
        names = list(schema_factories())
        if as_json:
            typer.echo(
                json.dumps(
                    {"schemas": names, "stale": [] if write else stale, "written": stale if write else []}
                )
            )
        else:
            for rel in names:
                if write:
                    state = "[green]written[/green]" if rel in stale else "unchanged"
                else:
                    state = "[red]out of date[/red]" if rel in stale else "[green]up to date[/green]"
                console.print(f"{rel}: {state}")
            if stale and not write:
                console.print("run `trainstack schemas --write` and commit the result")
        if check and stale:
            raise typer.Exit(1)
