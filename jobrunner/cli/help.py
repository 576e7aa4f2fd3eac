"""How `--help` shows options, shared by the `jobrunner` and `trainstack` commands.

typer 0.29 prints every option's type beside it, flags included: `--wait <bool>` reads as if
the flag took a value (`--wait true`), which it does not. `flags_take_no_value()` leaves the
type column empty for flags (and for `--help`); options that take a value keep theirs.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_original = TyperOption.display_type_rich


def _display_type(self: TyperOption, ctx: Any) -> str | None:
    return None if self.is_flag else _original(self, ctx)


def flags_take_no_value() -> None:
    """Show flags in `--help` without a type (idempotent)."""
    TyperOption.display_type_rich = _display_type  # type: ignore[method-assign]
