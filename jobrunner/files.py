"""Reading the files people write (YAML or JSON) into validated models, with errors that
name the file, the line or field, and the fix. Shared by job files, stack files, agent
configs and Batch AI files so that every one of them fails the same, readable way; and the
JSON Schema every such file's model publishes (`file_json_schema`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from jobrunner.errors import ConfigError, Problem, problems_from_validation

M = TypeVar("M", bound=pydantic.BaseModel)
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def read_text(
    path: str | Path, *, what: str = "file", encoding: str = "utf-8", error: type[ConfigError] = ConfigError
) -> str:
    """The file's text. Raises `error` naming the file when it is missing or unreadable
    (a folder, no permission, not `encoding`)."""
    p = Path(path)
    try:
        return p.read_text(encoding=encoding)
    except FileNotFoundError:
        raise error([Problem(str(p), "", f"{what} not found", "check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error([Problem(str(p), "", f"cannot read {what}: {exc}")]) from None


def read_mapping(path: str | Path, *, what: str = "file") -> dict[str, Any]:
    """Parse a YAML (or JSON: a subset) file whose top level must be a mapping.

    Raises ConfigError naming the file (and line, for syntax errors) when the file is
    missing, unreadable, not YAML, or not a mapping at the top.
    """
    return parse_mapping(read_text(path, what=what), source=str(path), what=what)


def parse_mapping(text: str, *, source: str | None, what: str = "file") -> dict[str, Any]:
    """Like `read_mapping`, for text already in hand (`source` names it in errors)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([Problem(source, where, f"not valid YAML: {problem}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(source, "", f"{what} must be a mapping of keys to values, got {type(data).__name__}")]
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError([Problem(source, str(bad[0]), "keys must be strings", "quote the key")])
    return data


def validate_model(
    model: type[M],
    data: Any,
    *,
    file: str | Path | None,
    prefix: tuple[str | int, ...] = (),
    error: type[ConfigError] = ConfigError,
) -> M:
    """`model.model_validate(data)`, raising `error` with one Problem per pydantic error."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise error(problems_from_validation(exc, model, file=file, prefix=prefix)) from None


def file_json_schema(model: type[pydantic.BaseModel], *, schema_id: str, title: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of files that `model` validates, as editors read it:
    keys as the file spells them (aliases), with its `$id` and a title for people."""
    schema = model.model_json_schema(by_alias=True)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": schema_id, **schema, "title": title}
