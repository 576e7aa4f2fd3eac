"""Markdown pieces the reviews are written with: table cells and tables, amounts, and a
pull request comment that fits GitHub's size limit (summary first, details collapsed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# GitHub refuses an issue or pull request comment body longer than this (characters).
GITHUB_COMMENT_LIMIT = 65_536


def cell(value: Any) -> str:
    """A table cell: strings as they are, other values as JSON, pipes and newlines escaped."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in rows)
    return lines


def capped(rows: Sequence[Sequence[Any]], limit: int, width: int) -> list[Sequence[Any]]:
    """At most `limit` rows; the last says how many more there are (`width` cells)."""
    if len(rows) <= limit:
        return list(rows)
    more = ("…", f"{len(rows) - limit} more (`--format json` lists them all)", *[""] * (width - 2))
    return [*rows[:limit], more]


def money(value: float) -> str:
    return f"{value:,.2f}"


def signed(value: float) -> str:
    """`+574,188.80`, `-50.70`, `+0.00`."""
    value = round(value, 2) + 0.0  # no `-0.00`
    return ("+" if value >= 0 else "-") + money(abs(value))


@dataclass(frozen=True)
class Section:
    """A titled part of a comment; `collapsed` puts it in a `<details>` block on GitHub.
    A section whose lines start with a table keeps its header when it is cut."""

    title: str
    lines: tuple[str, ...] | list[str]
    collapsed: bool = False


def _render_section(section: Section, collapsible: bool) -> str:
    if collapsible and section.collapsed:
        return "\n".join(
            ["<details>", f"<summary>{section.title}</summary>", "", *section.lines, "", "</details>"]
        )
    return "\n".join([f"### {section.title}", "", *section.lines])


def _cut_note(limit: int, left_out: int) -> str:
    return (
        f"_Cut to fit one comment ({limit:,} characters): {left_out} line(s) left out; "
        "`--format json` has everything._"
    )


def fit_comment(
    preamble: Sequence[str], sections: Sequence[Section], *, collapsible: bool, limit: int | None
) -> str:
    """The preamble and the sections in order, as one Markdown text. With `limit`, the text
    is at most `limit` characters: the first section that does not fit is cut by lines
    (keeping a table's header), the ones after it are left out, and a note says how many
    lines are missing. The preamble is never cut: keep it short."""
    head = "\n".join(preamble)
    rendered = [_render_section(s, collapsible) for s in sections]
    text = "\n\n".join([head, *rendered]) + "\n"
    if limit is None or len(text) <= limit:
        return text
    budget = limit - len(_cut_note(limit, sum(len(s.lines) for s in sections))) - 3
    used = len(head) + 1
    kept: list[str] = []
    left_out = 0
    for section, full in zip(sections, rendered, strict=True):
        if left_out == 0 and used + 2 + len(full) <= budget:
            kept.append(full)
            used += 2 + len(full)
            continue
        if left_out == 0:
            fixed = 2 if section.lines and section.lines[0].startswith("|") else 0
            frame = len(
                _render_section(Section(section.title, section.lines[:fixed], section.collapsed), collapsible)
            )
            room = budget - used - 2 - frame
            take = fixed
            for line in section.lines[fixed:]:
                if room < len(line) + 1:
                    break
                room -= len(line) + 1
                take += 1
            if take > fixed:
                part = _render_section(
                    Section(section.title, section.lines[:take], section.collapsed), collapsible
                )
                kept.append(part)
                used += 2 + len(part)
            left_out += len(section.lines) - take if take > fixed else len(section.lines)
            left_out = max(left_out, 1)
            continue
        left_out += len(section.lines)
    return "\n\n".join([head, *kept, _cut_note(limit, left_out)]) + "\n"


def clip(text: str, limit: int) -> str:
    """`text` cut at a line boundary to at most `limit` characters, with a note when cut."""
    if len(text) <= limit:
        return text
    lines = text.splitlines()
    note = _cut_note(limit, len(lines))
    kept: list[str] = []
    used = len(note) + 2
    for line in lines:
        if used + len(line) + 1 > limit:
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join([*kept, "", _cut_note(limit, len(lines) - len(kept))]) + "\n"
