"""One module per `trainstack` command. Each has `register(app: typer.Typer) -> None`."""

from __future__ import annotations

import importlib

import typer

# Add a module name here when its command exists.
COMMANDS: list[str] = [
    "validate",
    "preview",
    "schemas",
    "review",
    "diff",
    "migrate",
    "demo",
]


def register_all(app: typer.Typer) -> None:
    for name in COMMANDS:
        importlib.import_module(f"trainstack.commands.{name}").register(app)
