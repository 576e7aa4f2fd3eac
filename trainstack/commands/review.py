"""`trainstack review`: a stack's cost and policy findings; against a git ref, what a change does
to it (create, delete, update, replace and why, cost delta, new findings); against another
stack, how the two differ."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from jobrunner.errors import TrainstackError

if TYPE_CHECKING:
    from policies import Finding

T = TypeVar("T")


class ReviewFormat(enum.StrEnum):
    markdown = "markdown"
    github = "github"
    json = "json"


def review(
    stack: Annotated[
        str,
        typer.Option(
            "--stack", "-s", help="stack to review, e.g. prod (its file: `Pulumi.<stack>.yaml` in stacks/)"
        ),
    ],
    base_ref: Annotated[
        str | None,
        typer.Option(
            "--base-ref",
            "-r",
            help="git ref to review the change against, e.g. `origin/main`: the same stack as it was there",
        ),
    ] = None,
    base: Annotated[
        str | None, typer.Option("--base", "-b", help="another stack to compare with, e.g. prod vs dev")
    ] = None,
    output_format: Annotated[
        ReviewFormat,
        typer.Option(
            "--format",
            "-f",
            help="markdown, github (one pull request comment within GitHub's 65,536 characters) or json",
        ),
    ] = ReviewFormat.markdown,
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json")] = False,
    fail_on_replace: Annotated[
        bool,
        typer.Option(
            "--fail-on-replace",
            help="with --base-ref: exit 1 when the change replaces a resource or deletes one that holds data",
        ),
    ] = False,
    project_dir: Annotated[Path, typer.Option("--project-dir", help="the project's root folder")] = Path("."),
) -> None:
    """Review a stack offline: resources by type, monthly cost at minimum and maximum scale,
    policy findings by severity.

    With --base-ref, review a change: the stack as it was at the ref (its stack file,
    `__main__.py`, components and job files, planned from a temporary git worktree) against
    the working tree. Each resource is created, deleted, updated in place (property paths,
    both values) or replaced (which create-only property changed); deletes and replaces of
    resources that hold data come first; then the cost delta by resource and the policy
    findings the change introduces, apart from those already on the base. With --base,
    what differs from another stack.

    Exits 1 when a mandatory policy is broken (and, with --fail-on-replace, when the change
    replaces a resource or deletes one holding data), 2 when a stack or the ref cannot be read.

    Example:

        trainstack review --stack prod --base-ref origin/main --format github > comment.md

        trainstack review --stack prod --base dev > review.md

        trainstack review --stack dev --format json | jq '.cost.monthly_max'
    """
    fmt = ReviewFormat.json if as_json else output_format
    if base_ref is not None and base is not None:
        typer.echo("--base-ref and --base: give one (a git ref of this stack, or another stack)", err=True)
        raise typer.Exit(2)
    if fail_on_replace and base_ref is None:
        typer.echo("--fail-on-replace needs --base-ref: a replace is what a change does", err=True)
        raise typer.Exit(2)
    if base_ref is not None:
        _review_change(stack, base_ref, fmt, fail_on_replace, project_dir)
        return
    from trainstack.review import render_markdown, review_stack, to_json
    from trainstack.review_text import GITHUB_COMMENT_LIMIT, clip

    result = _or_exit(f"stack {stack!r}", lambda: review_stack(stack, base, project_dir))
    if fmt is ReviewFormat.json:
        sys.stdout.write(to_json(result))
    elif fmt is ReviewFormat.github:
        from trainstack.change_review import MARKER

        sys.stdout.write(
            clip(MARKER.format(stack=stack) + "\n" + render_markdown(result), GITHUB_COMMENT_LIMIT)
        )
    else:
        sys.stdout.write(render_markdown(result))
    _exit_on_policies(stack, result.mandatory)


def _review_change(
    stack: str, base_ref: str, fmt: ReviewFormat, fail_on_replace: bool, project_dir: Path
) -> None:
    from trainstack.change_review import change_json, render_change, review_change

    change = _or_exit(
        f"stack {stack!r} against {base_ref}", lambda: review_change(stack, base_ref, project_dir)
    )
    if fmt is ReviewFormat.json:
        sys.stdout.write(change_json(change))
    else:
        sys.stdout.write(render_change(change, github=fmt is ReviewFormat.github))
    replaced = [c.name_b for c in change.diff.replaced]
    deleted = [d.name for d in change.destructive if d.action == "delete"]
    _exit_on_policies(stack, change.head.mandatory, exit_now=False)
    if fail_on_replace and (replaced or deleted):
        what = "; ".join(
            part
            for part in (
                f"replaces {', '.join(replaced)}" if replaced else "",
                f"deletes {', '.join(deleted)}" if deleted else "",
            )
            if part
        )
        typer.echo(f"{stack}: the change {what} (--fail-on-replace)", err=True)
        raise typer.Exit(1)
    if not change.passed:
        raise typer.Exit(1)


def _or_exit(what: str, review: Callable[[], T]) -> T:
    """`review()`, or exit 2 with the reason when a stack or the ref cannot be read."""
    try:
        return review()
    except TrainstackError as err:
        typer.echo(f"cannot review {what}:\n{err}", err=True)
        raise typer.Exit(2) from None


def _exit_on_policies(stack: str, mandatory: Sequence[Finding], *, exit_now: bool = True) -> None:
    """Say which mandatory policies are broken; exit 1 (unless the caller has more to say)."""
    if not mandatory:
        return
    names = ", ".join(sorted({f.policy for f in mandatory}))
    typer.echo(f"{stack}: mandatory policies broken: {names}", err=True)
    if exit_now:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("review")(review)
