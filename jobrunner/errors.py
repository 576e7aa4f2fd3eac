"""Typed errors shared by every trainstack package, and the one place that turns a
pydantic validation failure into messages that name the file, the field and the fix.

    TrainstackError             anything trainstack refuses or fails at; carries `fix`
    ├── ConfigError             a file a person wrote is wrong (stack, job, agent config)
    │   └── JobSpecError        a job file is wrong, or asks for what a pool cannot run
    ├── StoreError              the job store refused a request or cannot be reached
    │   ├── NotFoundError       a run, blob or queue that does not exist
    │   └── ConflictError       an ETag-guarded update lost a race; re-read and retry
    ├── LaunchError             a planned process could not be started on this node
    └── TrackingError           the MLflow tracking server cannot be started or reached

Catch `TrainstackError` at a command's edge and print `str(err)`: one line per problem,
never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (`file`, dotted `field` path), what, and the fix."""

    file: str | None
    field: str
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.field) if p)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text} ({self.fix})" if self.fix else text


class TrainstackError(Exception):
    """Base of every error trainstack raises on purpose. `fix` says what to do about it."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class ConfigError(TrainstackError):
    """A file a person wrote is wrong. Holds every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem] | str, *, fix: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem(None, "", problems, fix)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return self.message


class JobSpecError(ConfigError):
    """A job file is malformed, or asks for something a pool cannot run."""


class StoreError(TrainstackError):
    """The job store refused a request or could not be reached after retries."""


class NotFoundError(StoreError):
    """A run, blob or queue that does not exist."""


class ConflictError(StoreError):
    """An ETag-guarded update lost a race with another writer: re-read, then retry."""


class LaunchError(TrainstackError):
    """A planned process could not be started on this node."""


class TrackingError(TrainstackError):
    """The MLflow tracking server cannot be started or reached, or refused a request."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of `choices` to a mistyped `word`, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in choices}
        return lowered.get(word.lower())
    return matches[0]


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(schema, schema["$defs"][ref.removeprefix("#/$defs/")])
    return node


def _children(schema: Mapping[str, Any], node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The alternatives a schema node stands for (through $ref, anyOf, oneOf, allOf)."""
    node = _resolve(schema, node)
    alternatives = [*node.get("anyOf", []), *node.get("oneOf", []), *node.get("allOf", [])]
    if not alternatives:
        return [node]
    out: list[Mapping[str, Any]] = []
    for alt in alternatives:
        out.extend(_children(schema, alt))
    return out


def known_keys(schema: Mapping[str, Any], loc: Sequence[str | int]) -> set[str]:
    """The property names the JSON `schema` allows at the object that holds `loc[-1]`."""
    nodes = _children(schema, schema)
    for step in loc[:-1]:
        nxt: list[Mapping[str, Any]] = []
        for node in nodes:
            if isinstance(step, int) and "items" in node:
                nxt.extend(_children(schema, node["items"]))
            elif isinstance(step, str):
                props = node.get("properties", {})
                if step in props:
                    nxt.extend(_children(schema, props[step]))
                elif isinstance(node.get("additionalProperties"), dict):
                    nxt.extend(_children(schema, node["additionalProperties"]))
        nodes = nxt
    keys: set[str] = set()
    for node in nodes:
        keys.update(node.get("properties", {}))
    return keys


def field_path(loc: Sequence[str | int]) -> str:
    """`("clusters", 0, "maxNodes")` -> `clusters[0].maxNodes`."""
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out


def problems_from_validation(
    err: pydantic.ValidationError,
    model: type[pydantic.BaseModel],
    *,
    file: str | Path | None,
    prefix: Sequence[str | int] = (),
) -> list[Problem]:
    """Turn pydantic's errors into `Problem`s; an unknown key gets a "did you mean".

    `prefix` is prepended to every field path (e.g. the `trainstack:` config namespace).
    Tagged-union members that pydantic adds to `loc` are left out of the path.
    """
    schema = model.model_json_schema(by_alias=True)
    problems: list[Problem] = []
    for e in err.errors(include_url=False):
        loc = [s for s in e["loc"] if not (isinstance(s, str) and s.startswith("function-"))]
        loc = _drop_union_tags(schema, loc)
        path = field_path([*prefix, *loc])
        fix: str | None = None
        message = e["msg"]
        if e["type"] == "extra_forbidden" and loc:
            unknown = str(loc[-1])
            choices = known_keys(schema, loc)
            guess = did_you_mean(unknown, choices)
            message = f"unknown key `{unknown}`"
            if guess:
                fix = f"did you mean `{guess}`?"
            elif choices:
                fix = "known keys here: " + ", ".join(f"`{c}`" for c in sorted(choices))
        elif e["type"] == "missing":
            message = "required field is missing"
            fix = f"add `{loc[-1]}`" if loc else None
        elif e["type"] in ("literal_error", "enum"):
            expected = e.get("ctx", {}).get("expected")
            message = f"{message}, got {e.get('input')!r}"
            if expected and isinstance(e.get("input"), str):
                guess = did_you_mean(
                    e["input"], [x.strip(" '") for x in str(expected).replace(" or ", ",").split(",")]
                )
                fix = f"did you mean {guess!r}?" if guess else None
        elif e["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        problems.append(Problem(str(file) if file else None, path, message, fix))
    return problems


def _drop_union_tags(schema: Mapping[str, Any], loc: list[str | int]) -> list[str | int]:
    """pydantic puts the union member it tried into `loc` (`inputs.x.InputFolder.path`,
    `int`, `function-after[...]`); a person never typed those, so leave them out."""
    out: list[str | int] = []
    for step in loc:
        if isinstance(step, str) and _is_member_tag(step) and step not in known_keys(schema, [*out, step]):
            continue
        out.append(step)
    return out


_BUILTIN_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal"}


def _is_member_tag(step: str) -> bool:
    camel_class = step[:1].isupper() and any(c.islower() for c in step) and "_" not in step
    return "[" in step or step in _BUILTIN_TAGS or camel_class
