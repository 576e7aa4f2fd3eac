"""The record of a conversion: what became of every input field, and the values a person
still has to fill in. MIGRATION.md is rendered from it and tests read it field by field."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")


class Fate(enum.StrEnum):
    """How faithfully a Batch AI field carried over."""

    MAPPED = "mapped"  # same meaning in the new file
    APPROXIMATED = "approximated"  # carried over, with a difference the note explains
    UNSUPPORTED = "unsupported"  # dropped; the note says why and what to do instead


@dataclass(frozen=True)
class FieldFate:
    """One input field (`path`, dotted as in the file) and what it became."""

    path: str
    fate: Fate
    became: str  # where it went: `job.yml: resources.instance_count`, or "-" when dropped
    note: str = ""  # why (approximated/unsupported) and what to do


@dataclass(frozen=True)
class Placeholder:
    """A value to fill in before the output can be used: where it is and what it stands for."""

    value: str  # `<AZURE_BATCHAI_STORAGE_ACCOUNT>`
    where: str  # `stack.yaml: trainstack:datastores[0].account`
    what: str


@dataclass
class Ledger:
    """Collects fates and placeholders while a file is converted. Secrets never enter it:
    callers pass a field's path, never its value."""

    fates: list[FieldFate] = field(default_factory=list)
    placeholders: list[Placeholder] = field(default_factory=list)

    def mapped(self, path: str, became: str, note: str = "") -> None:
        self.fates.append(FieldFate(path, Fate.MAPPED, became, note))

    def approximated(self, path: str, became: str, note: str) -> None:
        self.fates.append(FieldFate(path, Fate.APPROXIMATED, became, note))

    def unsupported(self, path: str, note: str) -> None:
        self.fates.append(FieldFate(path, Fate.UNSUPPORTED, "-", note))

    def placeholder(self, value: str, where: str, what: str) -> None:
        if not any(p.value == value and p.where == where for p in self.placeholders):
            self.placeholders.append(Placeholder(value, where, what))

    def counts(self) -> dict[Fate, int]:
        return {f: sum(1 for x in self.fates if x.fate is f) for f in Fate}

    def fate_of(self, path: str) -> FieldFate:
        """The record for one input field. Raises KeyError if the field was never recorded."""
        for f in self.fates:
            if f.path == path:
                return f
        raise KeyError(path)


def leaf_paths(data: Any, prefix: str = "") -> Iterator[str]:
    """Every leaf field of a parsed JSON document, as dotted paths with `[i]` for list items
    (`properties.mountVolumes.azureFileShares[0].relativeMountPath`)."""
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list) and data:
        for i, value in enumerate(data):
            yield from leaf_paths(value, f"{prefix}[{i}]")
    else:
        yield prefix


def placeholders_in(text: str) -> list[str]:
    """The `<UPPER_CASE>` placeholders in a value, in order, without repeats."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))
