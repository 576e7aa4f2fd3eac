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
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_VALUES = 100_000  # after expanding aliases; the largest real job or stack file has a few hundred


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting past MAX_DEPTH while it composes (its composer
    recurses: 3,000 levels would end in a RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)  # type: ignore[arg-type]  # PyYAML's stubs say int
        finally:
            self._depth -= 1


def _expanded_values(root: yaml.Node) -> int | None:
    """How many values `root` stands for with every alias expanded; None for an alias that
    contains itself. Each node is counted once (memo by identity), so this is linear in the
    file, not in the expansion."""
    memo: dict[int, int] = {}
    open_: set[int] = set()

    def count(node: yaml.Node) -> int | None:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in open_:
            return None
        open_.add(key)
        total = 1
        children = (
            [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
            else list(node.value) if isinstance(node, yaml.SequenceNode) else []
        )  # fmt: skip
        for child in children:
            n = count(child)
            if n is None:
                return None
            total = min(total + n, MAX_VALUES + 1)
        open_.discard(key)
        memo[key] = total
        return total

    return count(root)


def _too_big(source: str | None, size: int, what: str) -> ConfigError:
    return ConfigError(
        [Problem(source, "", f"{what} is {size} bytes; a {what} may be at most {MAX_FILE_BYTES} (1 MiB)")]
    )


def check_depth(data: Any, *, source: str | None, what: str = "file") -> None:
    """ConfigError naming `source` when `data` (parsed JSON) nests deeper than MAX_DEPTH."""
    todo = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ConfigError([Problem(source, "", f"{what} nests deeper than {MAX_DEPTH} levels")])
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        todo.extend((c, depth + 1) for c in children)


def read_text(
    path: str | Path, *, what: str = "file", encoding: str = "utf-8", error: type[ConfigError] = ConfigError
) -> str:
    """The file's text. Raises `error` naming the file when it is missing, unreadable (a
    folder, no permission, not `encoding`) or larger than MAX_FILE_BYTES."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES and p.is_file():
            raise error(_too_big(str(p), size, what).problems)
        return p.read_text(encoding=encoding)
    except FileNotFoundError:
        raise error([Problem(str(p), "", f"{what} not found", "check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error([Problem(str(p), "", f"cannot read {what}: {exc}")]) from None


def read_mapping(path: str | Path, *, what: str = "file") -> dict[str, Any]:
    """Parse a YAML (or JSON: a subset) file whose top level must be a mapping.

    Raises ConfigError naming the file (and line, for syntax errors) when the file is
    missing, unreadable, not YAML, not a mapping at the top, or past the bounds (size,
    nesting, values after aliases) in the module docstring.
    """
    return parse_mapping(read_text(path, what=what), source=str(path), what=what)


def parse_mapping(text: str, *, source: str | None, what: str = "file") -> dict[str, Any]:
    """Like `read_mapping`, for text already in hand (`source` names it in errors)."""
    if len(text) > MAX_FILE_BYTES:
        raise _too_big(source, len(text.encode(errors="replace")), what)
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # reads the start of the text: a ReaderError here too
        node = loader.get_single_node()
        if node is not None and (_expanded_values(node) or MAX_VALUES + 1) > MAX_VALUES:
            message = f"{what} stands for more than {MAX_VALUES} values once its YAML aliases are expanded"
            fix = "write the values out or use fewer aliases; an alias must not contain itself"
            raise ConfigError([Problem(source, "", message, fix)])
        data = None if node is None else loader.construct_document(node)
    except _TooDeep as exc:
        where = f"line {exc.problem_mark.line + 1}"
        raise ConfigError([Problem(source, where, f"{what} nests deeper than {MAX_DEPTH} levels")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([Problem(source, where, f"not valid YAML: {problem}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
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
