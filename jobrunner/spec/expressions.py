"""The expressions a job's command may hold: `${{inputs.x}}`, `${{outputs.x}}`, and Azure ML's
optional part `$[[ ... ${{inputs.x}} ... ]]`, which is kept (without its brackets) only when
every input it names has a value, and dropped as a whole otherwise.

Older files write `{inputs.x}`; `modernize` turns that into `${{inputs.x}}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# `${{ inputs.name }}`; Azure ML allows spaces inside the braces and dots/dashes in names.
_REF = re.compile(r"\$\{\{\s*([A-Za-z_][\w]*)\.([\w.-]+?)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
# `{inputs.x}` not already part of `${{inputs.x}}`.
_LEGACY_REF = re.compile(r"(?<![{$])\{(inputs|outputs)\.([\w.-]+)\}(?!\})")

NAMESPACES = ("inputs", "outputs")


@dataclass(frozen=True)
class Ref:
    """One `${{namespace.name}}` in a command; `optional` when inside `$[[ ]]`."""

    namespace: str
    name: str
    optional: bool

    def __str__(self) -> str:
        return f"${{{{{self.namespace}.{self.name}}}}}"


def modernize(command: str) -> str:
    """`{inputs.x}` (older files) -> `${{inputs.x}}`; anything else is left alone."""
    return _LEGACY_REF.sub(lambda m: f"${{{{{m.group(1)}.{m.group(2)}}}}}", command)


def references(command: str) -> Iterator[Ref]:
    """Every reference in `command`, in order, those inside `$[[ ]]` marked optional."""
    optional_spans = [m.span(1) for m in _OPTIONAL.finditer(command)]
    for m in _REF.finditer(command):
        optional = any(start <= m.start() < end for start, end in optional_spans)
        yield Ref(m.group(1), m.group(2), optional)


def render(command: str, value_of: Callable[[Ref], str | None]) -> str:
    """Substitute every reference with `value_of(ref)`.

    An optional part `$[[ ... ]]` is kept without its brackets when every reference in it
    has a value (not None) and removed entirely otherwise. A required reference whose value
    is None raises KeyError (the loader refuses such commands, so a plan never sees one).
    """

    def keep_or_drop(m: re.Match[str]) -> str:
        part = m.group(1)
        values = {r: value_of(r) for r in references(part)}
        if any(v is None for v in values.values()):
            return ""
        return _substitute(part, value_of)

    return _substitute(_OPTIONAL.sub(keep_or_drop, command), value_of)


def _substitute(text: str, value_of: Callable[[Ref], str | None]) -> str:
    def one(m: re.Match[str]) -> str:
        ref = Ref(m.group(1), m.group(2), optional=False)
        value = value_of(ref)
        if value is None:
            raise KeyError(str(ref))
        return value

    return _REF.sub(one, text)


# Azure ML's server expressions that an output `path` may hold: the job's name (a pool's run
# id), the output's own name, and the default datastore. Each run writes its own folder with
# `azureml://datastores/${{default_datastore}}/paths/${{name}}/${{output_name}}`.
OUTPUT_PATH_EXPRESSIONS = ("name", "output_name", "default_datastore")
_SERVER_EXPR = re.compile(r"\$\{\{\s*([\w.]+)\s*\}\}")


def unknown_output_path_expressions(path: str) -> list[str]:
    """The `${{...}}` in an output path that a pool cannot fill in (empty when all are known)."""
    return [m.group(1) for m in _SERVER_EXPR.finditer(path) if m.group(1) not in OUTPUT_PATH_EXPRESSIONS]


def render_output_path(path: str, *, job_name: str, output_name: str, default_datastore: str) -> str:
    """`path` with `${{name}}`, `${{output_name}}` and `${{default_datastore}}` filled in; any
    other expression is left as written (the loader refuses such paths)."""
    values = {"name": job_name, "output_name": output_name, "default_datastore": default_datastore}
    return _SERVER_EXPR.sub(lambda m: values.get(m.group(1), m.group(0)), path)
