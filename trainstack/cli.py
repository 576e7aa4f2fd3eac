"""`trainstack`: check, show and review stacks offline; migrate Batch AI files; run the demo.

Each command lives in its own module under `trainstack/commands/` and registers itself here.
"""

from __future__ import annotations

import typer

from jobrunner.cli.help import flags_take_no_value

flags_take_no_value()
app = typer.Typer(
    name="trainstack",
    help="GPU training infrastructure on Azure as Pulumi stacks: check, preview and review them offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

# One line per command module; each defines `register(app)`.
from trainstack.commands import register_all  # noqa: E402

register_all(app)


def main() -> None:
    app()
