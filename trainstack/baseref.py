"""A stack's offline plan as it was at a git ref: `trainstack review --base-ref origin/main`.

The ref is checked out into a temporary git worktree (`git worktree add --detach`), and the
plan is recorded there by a separate Python process, so that the stack file, `__main__.py`,
the components and the job files are all the ref's: the components of the working tree are
already imported in this process and cannot be swapped for others. The tool itself (this
package, the policies, the job runner) stays the installed one, so both plans are judged by
the same rules. The worktree is removed afterwards, also when the plan fails.

    base = plan_at_ref("prod", "origin/main", project_dir=".")

Errors (`BaseRefError`, a TrainstackError): not a git repository, an unknown ref, a stack
that cannot be planned at the ref (its problems are given with `<ref>:<path>` file names).
A stack with no file at the ref is not an error: its base plan is empty (`missing`).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from jobrunner.errors import ConfigError, Problem, TrainstackError
from policies import PolicyContext, Resource, Severity, SkuFacts
from trainstack.replacement import ReplaceOptions

# A plan takes seconds; a worktree checkout of a large repository can take longer.
CHILD_TIMEOUT_S = 600


class BaseRefError(TrainstackError):
    """The base of a review cannot be read from git or planned at its ref."""


@dataclass(frozen=True)
class StackRef:
    """`prod@origin/main`: a stack, and the git ref to read it at (None: the working tree)."""

    stack: str
    ref: str | None = None

    @classmethod
    def parse(cls, text: str) -> StackRef:
        """`prod` or `prod@<ref>`. Stack names cannot hold `@` (Pulumi allows letters,
        digits, `-`, `_` and `.`), so the first `@` separates them."""
        stack, sep, ref = text.partition("@")
        if not stack or (sep and not ref):
            raise BaseRefError(
                f"{text!r} is not a stack or stack@ref", fix="write e.g. prod or prod@origin/main"
            )
        return cls(stack, ref or None)

    def __str__(self) -> str:
        return f"{self.stack}@{self.ref}" if self.ref else self.stack


@dataclass(frozen=True)
class BasePlan:
    """A stack planned at a ref. `commit` is the ref resolved; `missing` when the ref has no
    file for the stack (everything in the working tree's plan is then a create)."""

    ref: str
    commit: str
    resources: tuple[Resource, ...]
    context: PolicyContext
    options: Mapping[tuple[str, str], ReplaceOptions] = field(default_factory=dict)
    missing: bool = False


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=CHILD_TIMEOUT_S,
        )
    except FileNotFoundError:
        raise BaseRefError("git is not installed", fix="install git to review against a ref") from None
    if done.returncode != 0:
        raise BaseRefError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


def _repository(project_dir: Path) -> tuple[Path, str]:
    """The git repository holding `project_dir`, and the project's path inside it."""
    try:
        top = _git(project_dir, "rev-parse", "--show-toplevel")
    except BaseRefError:
        raise BaseRefError(
            f"{project_dir} is not inside a git repository", fix="run the review from a git checkout"
        ) from None
    return Path(top), _git(project_dir, "rev-parse", "--show-prefix")


def resolve(ref: str, project_dir: str | Path) -> str:
    """The commit `ref` names. Raises BaseRefError naming the ref when git does not know it."""
    repo, _ = _repository(Path(project_dir).resolve())
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except BaseRefError:
        raise BaseRefError(
            f"git does not know the ref {ref!r} in {repo}",
            fix="fetch it first (git fetch origin main), or in CI check out with the full history",
        ) from None


def plan_at_ref(stack: str, ref: str, project_dir: str | Path = ".") -> BasePlan:
    """Plan `stack` as it was at `ref`, from a temporary worktree. Raises BaseRefError."""
    project = Path(project_dir).resolve()
    repo, prefix = _repository(project)
    commit = resolve(ref, project)
    with tempfile.TemporaryDirectory(prefix="trainstack-base-") as tmp:
        worktree = Path(tmp) / "worktree"
        _git(repo, "worktree", "add", "--detach", "--quiet", str(worktree), commit)
        try:
            return _plan_in(worktree / prefix, stack, ref, commit, Path(tmp))
        finally:
            # If this fails the directory still goes with `tmp`; `git worktree prune` drops the entry.
            with contextlib.suppress(BaseRefError):
                _git(repo, "worktree", "remove", "--force", str(worktree))


def _plan_in(project: Path, stack: str, ref: str, commit: str, tmp: Path) -> BasePlan:
    out = tmp / "plan.json"
    # `-P` and a neutral working directory: the tool comes from where it is installed (or
    # PYTHONPATH), never from the worktree; only the project's modules come from the ref.
    done = subprocess.run(
        [sys.executable, "-P", "-m", "trainstack.baseref", stack, str(project), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if not out.exists():
        raise BaseRefError(f"planning {stack!r} at {ref} failed:\n{done.stderr.strip()[-4000:]}")
    data = json.loads(out.read_text(encoding="utf-8"))
    if "crash" in data:
        crash = data["crash"]
        where = f"{_at_ref(crash['file'], project, ref)}:{crash['line']}"
        raise BaseRefError(f"planning {stack!r} at {ref} failed: {where}: {crash['error']}")
    if "problems" in data:
        problems = [
            Problem(_at_ref(p["file"], project, ref), p["field"], p["message"], p["fix"])
            for p in data["problems"]
        ]
        raise BaseRefError(
            f"stack {stack!r} cannot be planned at {ref}:\n" + "\n".join(str(p) for p in problems)
        )
    return _from_json(data, ref, commit)


def _at_ref(file: str | None, project: Path, ref: str) -> str | None:
    """A path inside the worktree as `<ref>:<path in the project>`."""
    if not file:
        return file
    try:
        return f"{ref}:{Path(file).resolve().relative_to(project.resolve())}"
    except ValueError:
        return file


# --- What the child process sends back --------------------------------------------------------


def _to_json(planned: Any) -> dict[str, Any]:
    ctx: PolicyContext = planned.context
    return {
        "resources": [
            {"type": r.type, "name": r.name, "parent": r.parent, "inputs": dict(r.inputs)}
            for r in planned.resources
        ],
        "options": [{"type": k[0], "name": k[1], **v.as_json()} for k, v in sorted(planned.options.items())],
        "context": {
            "environment": ctx.environment,
            "required_tags": list(ctx.required_tags),
            "budget_usd": ctx.budget_usd,
            "severities": {k: v.value for k, v in ctx.severities.items()},
            "catalog": [
                {**vars(s), "retired": s.retired.isoformat() if s.retired else None}
                for s in ctx.catalog.values()
            ],
        },
    }


def _from_json(data: Mapping[str, Any], ref: str, commit: str) -> BasePlan:
    if data.get("missing"):
        return BasePlan(ref, commit, (), PolicyContext(environment=""), {}, missing=True)
    c = data["context"]
    catalog = {
        s["name"]: SkuFacts(**{**s, "retired": date.fromisoformat(s["retired"]) if s["retired"] else None})
        for s in c["catalog"]
    }
    ctx = PolicyContext(
        environment=c["environment"],
        required_tags=tuple(c["required_tags"]),
        budget_usd=c["budget_usd"],
        severities={k: Severity(v) for k, v in c["severities"].items()},
        catalog=catalog,
    )
    options = {
        (o["type"], o["name"]): ReplaceOptions(
            tuple(o["replace_on_changes"]), bool(o["delete_before_replace"])
        )
        for o in data["options"]
    }
    resources = tuple(Resource.from_record(r) for r in data["resources"])
    return BasePlan(ref, commit, resources, ctx, options)


def _child(stack: str, project: Path, out: Path) -> None:
    """In the child process: plan `stack` with the project's own components first on the path."""
    if "components" in sys.modules:  # would shadow the ref's components
        raise RuntimeError("components imported before the ref's project was put on sys.path")
    sys.path.insert(0, str(project))
    from trainstack.review import plan_stack
    from trainstack.stack import stack_path

    if not stack_path(stack, project).exists():
        result: dict[str, Any] = {"missing": True}
    else:
        try:
            result = _to_json(plan_stack(stack, project))
        except ConfigError as err:
            result = {"problems": [vars(p) for p in err.problems]}
        except ValueError as err:
            result = {"problems": [vars(Problem(str(stack_path(stack, project)), "", str(err)))]}
        except Exception as err:  # the ref's program or components crashed: say where
            frames = traceback.extract_tb(err.__traceback__)
            ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(project.resolve())]
            last = (ours or frames)[-1]
            result = {
                "crash": {"file": last.filename, "line": last.lineno, "error": f"{type(err).__name__}: {err}"}
            }
    out.write_text(json.dumps(result), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    stack, project, out = argv if argv is not None else sys.argv[1:]
    _child(stack, Path(project), Path(out))


if __name__ == "__main__":
    main()
