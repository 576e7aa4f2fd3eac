"""`trainstack review`: a stack's cost, policy findings and, against a base, its differences."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from jobrunner.errors import TrainstackError


class ReviewFormat(enum.StrEnum):
    markdown = "markdown"
    json = "json"


def review(
    stack: Annotated[str, typer.Option("--stack", "-s", help="stack to review (stacks/Pulumi.<stack>.yaml)")],
    base: Annotated[
        str | None, typer.Option("--base", "-b", help="stack to compare with, e.g. prod vs dev")
    ] = None,
    output_format: Annotated[
        ReviewFormat, typer.Option("--format", "-f", help="markdown (a pull request comment) or json")
    ] = ReviewFormat.markdown,
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json")] = False,
    project_dir: Annotated[Path, typer.Option("--project-dir", help="the project's root folder")] = Path("."),
) -> None:
    """Review a stack offline: resources by type, monthly cost at minimum and maximum scale,
    policy findings by severity and, with --base, what differs from another stack.

    Exits 1 when a mandatory policy is broken, 2 when the stack cannot be read.

    Example:

        trainstack review --stack prod --base dev > review.md

        trainstack review --stack dev --format json | jq '.cost.monthly_max'
    """
    from trainstack.review import render_markdown, review_stack, to_json

    try:
        result = review_stack(stack, base, project_dir)
    except TrainstackError as err:
        typer.echo(f"cannot review stack {stack!r}:\n{err}", err=True)
        raise typer.Exit(2) from None
    json_out = as_json or output_format is ReviewFormat.json
    sys.stdout.write(to_json(result) if json_out else render_markdown(result))
    if not result.passed:
        names = ", ".join(sorted({f.policy for f in result.mandatory}))
        typer.echo(f"{stack}: mandatory policies broken: {names}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("review")(review)
