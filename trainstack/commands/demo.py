"""`trainstack demo`: distributed training on a 2-node local pool, end to end."""

from __future__ import annotations

import typer


def demo() -> None:
    """Start a 2-node local pool, run the PyTorch DDP example on it with live logs, show its
    metrics and outputs, and stop the pool. Exits 1 when the job fails.

    Example:

        trainstack demo
    """
    from trainstack.demo import run_demo

    raise typer.Exit(run_demo())


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
