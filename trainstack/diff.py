"""How two stacks differ: resources only in one of them, and for the resources both declare,
every input that differs, as a property path with both values.

Resources are paired by type and logical name. Names often carry the stack's environment
(`mlw-dev` / `mlw-prod`), so what is left unpaired is paired again with each side's
environment name replaced by a placeholder. What is still left is paired, per type, by the
most similar names (`a100-spot-compute` / `a100-lowpri-compute`), so that two stacks whose
clusters are named differently still show how their clusters differ; such a pair is shown
as a rename (`a → b`). Values that differ only by that same
environment name (a `computeName` of `gpu-dev` and `gpu-prod`) are still reported: they are
real differences a reviewer may want to see.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.model import Resource
from trainstack.replacement import ReplaceOptions, ReplaceReason, replace_reasons

_MISSING = "(not set)"


@dataclass(frozen=True)
class PropertyChange:
    """One input that differs: its path (`properties.properties.scaleSettings.maxNodeCount`)
    and its value in each stack (`(not set)` where a stack leaves it out)."""

    path: str
    a: Any
    b: Any

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class ResourceChange:
    """A resource both stacks declare, with the inputs that differ and, when some of them
    cannot change in place, why it is replaced (`replace`; see `trainstack.replacement`)."""

    type: str
    name_a: str
    name_b: str
    changes: tuple[PropertyChange, ...]
    replace: tuple[ReplaceReason, ...] = ()
    delete_before_replace: bool = False

    @property
    def name(self) -> str:
        return self.name_a if self.name_a == self.name_b else f"{self.name_a} → {self.name_b}"

    @property
    def action(self) -> str:
        """`replace` or `update` (in place)."""
        return "replace" if self.replace else "update"

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name_a": self.name_a,
            "name_b": self.name_b,
            "action": self.action,
            "replace_reasons": [r.as_json() for r in self.replace],
            "delete_before_replace": self.delete_before_replace if self.replace else False,
            "changes": [c.as_json() for c in self.changes],
        }


@dataclass(frozen=True)
class StackDiff:
    """`only_a` / `only_b`: resources one stack declares and the other does not."""

    a: str
    b: str
    only_a: tuple[Resource, ...]
    only_b: tuple[Resource, ...]
    changed: tuple[ResourceChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.only_a or self.only_b or self.changed)

    @property
    def replaced(self) -> tuple[ResourceChange, ...]:
        return tuple(c for c in self.changed if c.replace)

    @property
    def updated(self) -> tuple[ResourceChange, ...]:
        return tuple(c for c in self.changed if not c.replace)

    def as_json(self) -> dict[str, Any]:
        def brief(r: Resource) -> dict[str, str]:
            return {"type": r.type, "name": r.name}

        return {
            "a": self.a,
            "b": self.b,
            "only_a": [brief(r) for r in self.only_a],
            "only_b": [brief(r) for r in self.only_b],
            "changed": [c.as_json() for c in self.changed],
        }


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values of nested mappings and lists by path: `{"a": {"b": [1]}}` -> `{"a.b[0]": 1}`.
    An empty mapping or list is a leaf of its own, so `{}` and "not set" stay different."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def property_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[PropertyChange, ...]:
    """Every leaf path whose value differs between two input mappings, sorted by path."""
    fa, fb = flatten(a), flatten(b)
    return tuple(
        PropertyChange(path, fa.get(path, _MISSING), fb.get(path, _MISSING))
        for path in sorted(fa.keys() | fb.keys())
        if fa.get(path, _MISSING) != fb.get(path, _MISSING)
    )


def _neutral(name: str, environment: str) -> str:
    """The name with the environment as a whole word (between separators) made generic."""
    if not environment:
        return name
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(environment)}(?![A-Za-z0-9])", "{env}", name)


SIMILAR_NAMES = 0.55


def _name_similarity(a: str, b: str) -> float:
    """How alike two names are once their shared ending (`-compute`, `-datastore`: the part
    that says the type) is left out, so that it does not make unrelated names look alike."""
    common = len(os.path.commonprefix([a[::-1], b[::-1]]))
    return difflib.SequenceMatcher(None, a[: len(a) - common], b[: len(b) - common]).ratio()


def _pair_similar(
    a: list[Resource], b: list[Resource], env_a: str, env_b: str
) -> tuple[list[tuple[Resource, Resource]], list[Resource], list[Resource]]:
    """Pair leftovers of the same type, most similar names first, above `SIMILAR_NAMES`.
    Returns the pairs and what stays unpaired on each side."""
    candidates = sorted(
        (
            (-_name_similarity(_neutral(ra.name, env_a), _neutral(rb.name, env_b)), i, j)
            for i, ra in enumerate(a)
            for j, rb in enumerate(b)
            if ra.type == rb.type
        ),
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs: list[tuple[Resource, Resource]] = []
    for negative_ratio, i, j in candidates:
        if -negative_ratio < SIMILAR_NAMES or i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((a[i], b[j]))
    rest_a = [r for i, r in enumerate(a) if i not in used_a]
    rest_b = [r for j, r in enumerate(b) if j not in used_b]
    return pairs, rest_a, rest_b


def diff_stacks(
    a: Sequence[Resource],
    b: Sequence[Resource],
    *,
    name_a: str = "a",
    name_b: str = "b",
    env_a: str = "",
    env_b: str = "",
    same_stack: bool = False,
    options: Mapping[tuple[str, str], ReplaceOptions] | None = None,
) -> StackDiff:
    """Compare two stacks' resources. `env_a`/`env_b` are their environment names, used to
    pair resources whose names differ only by it. With `same_stack` (one stack before and
    after a change) resources pair by type and name alone, as Pulumi identifies them: a
    renamed resource is a delete and a create. `options` are B's replace options by (type,
    name); each changed resource says whether the change replaces it. Never fails: a
    resource whose inputs are not mappings compares as a single value."""
    by_key_b = {(r.type, r.name): r for r in b}
    pairs: list[tuple[Resource, Resource]] = []
    left_a: list[Resource] = []
    for r in a:
        other = by_key_b.pop((r.type, r.name), None)
        if other is not None:
            pairs.append((r, other))
        else:
            left_a.append(r)
    if same_stack:
        return _stack_diff(name_a, name_b, pairs, left_a, list(by_key_b.values()), options or {})
    neutral_b = {(r.type, _neutral(r.name, env_b)): r for r in by_key_b.values()}
    still_a: list[Resource] = []
    for r in left_a:
        other = neutral_b.pop((r.type, _neutral(r.name, env_a)), None)
        if other is not None:
            pairs.append((r, other))
        else:
            still_a.append(r)
    similar, only_a, only_b = _pair_similar(still_a, list(neutral_b.values()), env_a, env_b)
    pairs.extend(similar)
    return _stack_diff(name_a, name_b, pairs, only_a, only_b, options or {})


def _stack_diff(
    name_a: str,
    name_b: str,
    pairs: list[tuple[Resource, Resource]],
    only_a: list[Resource],
    only_b: list[Resource],
    options: Mapping[tuple[str, str], ReplaceOptions],
) -> StackDiff:
    changed = []
    for ra, rb in pairs:
        changes = property_changes(ra.inputs, rb.inputs)
        if not changes:
            continue
        opts = options.get((rb.type, rb.name), ReplaceOptions())
        reasons = replace_reasons(rb.type, [c.path for c in changes], opts.replace_on_changes)
        changed.append(
            ResourceChange(ra.type, ra.name, rb.name, changes, reasons, opts.delete_before_replace)
        )
    return StackDiff(
        a=name_a,
        b=name_b,
        only_a=tuple(sorted(only_a, key=lambda r: (r.type, r.name))),
        only_b=tuple(sorted(only_b, key=lambda r: (r.type, r.name))),
        changed=tuple(sorted(changed, key=lambda c: (c.type, c.name_a))),
    )
