"""The review of a change: a stack at a git ref (the base, e.g. `origin/main`) against the same
stack in the working tree. What a reviewer of an infrastructure pull request asks: what gets
created, deleted, updated in place or replaced (and why), which of those destroy data, what
the change does to the monthly cost, and which policy findings the change brings in.

    change = review_change("prod", "origin/main", project_dir=".")
    render_change(change, github=True)   # one pull request comment
    change_json(change)                  # the same facts for machines

Both plans are judged by the installed policies and priced each from its own GPU catalog,
so a price change in the catalog shows in the cost delta. Rendering is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies import Finding, Resource, Severity, evaluate
from trainstack.cost import CostEstimate, CostLine, estimate
from trainstack.diff import ResourceChange, StackDiff, diff_stacks
from trainstack.replacement import stateful_reason
from trainstack.review import Review, build_review
from trainstack.review_text import (
    GITHUB_COMMENT_LIMIT,
    Section,
    capped,
    cell,
    fit_comment,
    money,
    signed,
    table,
)


@dataclass(frozen=True)
class Destructive:
    """A delete or replace of a resource that holds data, and what it holds."""

    action: str  # delete | replace
    type: str
    name: str
    holds: str

    def as_json(self) -> dict[str, str]:
        return {"action": self.action, "type": self.type, "name": self.name, "holds": self.holds}


@dataclass(frozen=True)
class CostChange:
    """One priced resource whose monthly cost differs between base and change."""

    resource: str
    before: CostLine | None
    after: CostLine | None

    @property
    def delta_min(self) -> float:
        return round(
            (self.after.monthly_min if self.after else 0) - (self.before.monthly_min if self.before else 0), 2
        )

    @property
    def delta_max(self) -> float:
        return round(
            (self.after.monthly_max if self.after else 0) - (self.before.monthly_max if self.before else 0), 2
        )

    @property
    def action(self) -> str:
        return "created" if self.before is None else "deleted" if self.after is None else "changed"

    def summary(self) -> str:
        """At max, and at min where that moves too."""
        text = self.describe("max")
        return f"{text}; {self.describe('min')}" if self.delta_min else text

    def describe(self, scale: str) -> str:
        """`+ 16 × Standard_ND96isr_H100_v5 at max: +574,188.80 USD/month` (scale: min or max)."""
        delta = self.delta_max if scale == "max" else self.delta_min
        priority = bool(self.before and self.after and self.before.priority != self.after.priority)
        before, after = (_what(line, scale, priority) for line in (self.before, self.after))
        what = (
            f"+ {after}"
            if self.before is None
            else f"- {before}"
            if self.after is None
            else f"{before} → {after}"
        )
        return f"{what} at {scale}: {signed(delta)} USD/month"

    def as_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "action": self.action,
            "before": self.before.as_json() if self.before else None,
            "after": self.after.as_json() if self.after else None,
            "delta_min": self.delta_min,
            "delta_max": self.delta_max,
            "at_min": self.describe("min"),
            "at_max": self.describe("max"),
        }


def _what(line: CostLine | None, scale: str, priority: bool = False) -> str:
    """`16 × Standard_ND96isr_H100_v5`, with the priority when asked; the kind for a fixed price."""
    if line is None:
        return ""
    if not line.vm_size:
        return line.kind
    nodes = line.max_nodes if scale == "max" else line.min_nodes
    return f"{nodes} × {line.vm_size}" + (f" ({line.priority})" if priority else "")


def cost_changes(before: CostEstimate, after: CostEstimate) -> tuple[CostChange, ...]:
    """Per resource, the cost lines that differ (created, deleted or changed), by name."""
    a = {line.resource: line for line in before.lines}
    b = {line.resource: line for line in after.lines}
    out = []
    for name in sorted(a.keys() | b.keys()):
        change = CostChange(name, a.get(name), b.get(name))
        same = change.before is not None and change.after is not None and change.before == change.after
        if not same and (
            change.delta_min or change.delta_max or change.action != "changed" or _what_changed(change)
        ):
            out.append(change)
    return tuple(out)


def _what_changed(change: CostChange) -> bool:
    return any(_what(change.before, s) != _what(change.after, s) for s in ("min", "max"))


@dataclass(frozen=True)
class ChangeReview:
    """The working tree's `stack` against itself at `ref` (resolved to `commit`)."""

    stack: str
    ref: str
    commit: str
    head: Review
    base_resources: tuple[Resource, ...]
    base_cost: CostEstimate
    base_findings: tuple[Finding, ...]
    diff: StackDiff
    base_missing: bool = False

    @property
    def passed(self) -> bool:
        """False when a mandatory policy is broken in the change (introduced or not): exit 1."""
        return self.head.passed

    @property
    def introduced(self) -> tuple[Finding, ...]:
        before = {_key(f) for f in self.base_findings}
        return tuple(f for f in self.head.findings if _key(f) not in before)

    @property
    def existing(self) -> tuple[Finding, ...]:
        before = {_key(f) for f in self.base_findings}
        return tuple(f for f in self.head.findings if _key(f) in before)

    @property
    def resolved(self) -> tuple[Finding, ...]:
        after = {_key(f) for f in self.head.findings}
        return tuple(f for f in self.base_findings if _key(f) not in after)

    @property
    def destructive(self) -> tuple[Destructive, ...]:
        out = [
            Destructive("delete", r.type, r.name, holds)
            for r in self.diff.only_a
            if (holds := stateful_reason(r.type)) is not None
        ]
        out += [
            Destructive("replace", c.type, c.name_b, holds)
            for c in self.diff.replaced
            if (holds := stateful_reason(c.type)) is not None
        ]
        return tuple(sorted(out, key=lambda d: (d.type, d.name, d.action)))

    @property
    def cost_changes(self) -> tuple[CostChange, ...]:
        return cost_changes(self.base_cost, self.head.cost)

    @property
    def unchanged(self) -> int:
        return len(self.head.resources) - len(self.diff.only_b) - len(self.diff.changed)


def _key(finding: Finding) -> tuple[str, str, str]:
    # Not the message: a budget finding's message carries amounts that a change moves.
    return (finding.policy, finding.resource_type, finding.resource)


def review_change(stack: str, ref: str, project_dir: str | Path = ".") -> ChangeReview:
    """Plan `stack` at `ref` (from a temporary worktree) and in `project_dir`, and compare.

    Raises BaseRefError (git, the ref, the base plan) and what `plan_stack` raises for the
    working tree's stack (ConfigError).
    """
    from trainstack.baseref import plan_at_ref
    from trainstack.review import plan_stack

    base = plan_at_ref(stack, ref, project_dir)  # first: a wrong ref is the cheaper mistake to report
    head = plan_stack(stack, project_dir)
    diff = diff_stacks(
        base.resources,
        head.resources,
        name_a=f"{stack}@{ref}",
        name_b=stack,
        same_stack=True,
        options=head.options,
    )
    base_ctx = head.context if base.missing else base.context
    return ChangeReview(
        stack=stack,
        ref=ref,
        commit=base.commit,
        head=build_review(stack, head.resources, head.context),
        base_resources=base.resources,
        base_cost=estimate(base.resources, base_ctx.catalog),
        base_findings=tuple(evaluate(base.resources, base_ctx)) if not base.missing else (),
        diff=diff,
        base_missing=base.missing,
    )


# --- JSON ---------------------------------------------------------------------------------------


def _brief(r: Resource) -> dict[str, Any]:
    return {"type": r.type, "name": r.name}


def _change_json(c: ResourceChange) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": c.type,
        "name": c.name_b,
        "changes": [{"path": p.path, "before": p.a, "after": p.b} for p in c.changes],
    }
    if c.replace:
        out["replace_reasons"] = [r.as_json() for r in c.replace]
        out["delete_before_replace"] = c.delete_before_replace
    return out


def change_json(review: ChangeReview) -> str:
    d = review.diff
    data = {
        "stack": review.stack,
        "environment": review.head.environment,
        "base": {"ref": review.ref, "commit": review.commit, "missing": review.base_missing},
        "passed": review.passed,
        "changes": {
            "create": [_brief(r) for r in d.only_b],
            "delete": [_brief(r) for r in d.only_a],
            "replace": [_change_json(c) for c in d.replaced],
            "update": [_change_json(c) for c in d.updated],
            "unchanged": review.unchanged,
        },
        "destructive": [x.as_json() for x in review.destructive],
        "cost": {
            "before": review.base_cost.as_json(),
            "after": review.head.cost.as_json(),
            "delta": {
                "monthly_min": round(review.head.cost.monthly_min - review.base_cost.monthly_min, 2),
                "monthly_max": round(review.head.cost.monthly_max - review.base_cost.monthly_max, 2),
                "by_resource": [c.as_json() for c in review.cost_changes],
            },
        },
        "findings": {
            "introduced": [f.as_json() for f in review.introduced],
            "existing": [f.as_json() for f in review.existing],
            "resolved": [f.as_json() for f in review.resolved],
        },
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


# --- Markdown -----------------------------------------------------------------------------------

MARKER = "<!-- trainstack-review:{stack} -->"
# Rows shown in the always-open tables; the rest are counted (JSON has them all).
CHANGE_ROWS = 150
FINDING_ROWS = 100
# Rows shown in the always-open tables; the rest are counted (JSON has them all).
CHANGE_ROWS = 150
FINDING_ROWS = 100
_SHORT = 12  # characters of the commit shown


def _range(cost: CostEstimate) -> str:
    return f"{money(cost.monthly_min)} – {money(cost.monthly_max)}"


def _why(c: ResourceChange) -> str:
    why = "; ".join(r.describe() for r in c.replace)
    return why + ("; deleted before the new one is created" if c.delete_before_replace else "")


def _findings_rows(findings: Sequence[Finding]) -> list[tuple[str, ...]]:
    order = {Severity.MANDATORY: 0, Severity.ADVISORY: 1}
    return [
        (f.severity.value, f"`{f.policy}`", f"`{f.resource}`", f.message, f.fix)
        for f in sorted(findings, key=lambda f: (order[f.severity], f.policy, f.resource))
    ]


def _summary(review: ChangeReview) -> list[str]:
    d = review.diff
    mandatory_new = sum(1 for f in review.introduced if f.severity is Severity.MANDATORY)
    verdict = "passes" if review.passed else "**fails**"
    base = review.base_cost
    head = review.head.cost
    at_min, at_max = signed(head.monthly_min - base.monthly_min), signed(head.monthly_max - base.monthly_max)
    counts = (
        f"{len(d.only_b)} to create, {len(d.replaced)} to replace, {len(d.updated)} to update in place, "
        f"{len(d.only_a)} to delete, {review.unchanged} unchanged"
    )
    return [
        f"- Changes: {counts}",
        f"- Policies: {verdict} — {len(review.introduced)} finding(s) introduced by this change "
        f"({mandatory_new} mandatory), {len(review.existing)} already on `{review.ref}`, "
        f"{len(review.resolved)} resolved",
        f"- Cost: {_range(base)} → {_range(head)} {head.currency}/month (at min {at_min}, at max {at_max})",
    ]


def _destructive_lines(review: ChangeReview, limit: int = 40) -> list[str]:
    items = review.destructive
    if not items:
        return []
    out = [
        "> [!CAUTION]",
        f"> **Destructive: {len(items)} resource(s) holding data would be deleted or replaced.**",
    ]
    out += [f"> - **{x.action}** `{x.name}` ({x.holds})" for x in items[:limit]]
    if len(items) > limit:
        out.append(f"> - … and {len(items) - limit} more (`--format json` lists them all)")
    return ["\n".join(out), ""]


def _sections(review: ChangeReview) -> list[Section]:
    d = review.diff
    sections: list[Section] = []
    cost = {c.resource: signed(c.delta_max) for c in review.cost_changes}
    rows = [("create", f"`{r.name}`", r.type, "", cost.get(r.name, "")) for r in d.only_b]
    rows += [("**replace**", f"`{c.name_b}`", c.type, _why(c), cost.get(c.name_b, "")) for c in d.replaced]
    rows += [
        (
            "update",
            f"`{c.name_b}`",
            c.type,
            ", ".join(f"`{p.path}`" for p in c.changes),
            cost.get(c.name_b, ""),
        )
        for c in d.updated
    ]
    rows += [("**delete**", f"`{r.name}`", r.type, "", cost.get(r.name, "")) for r in d.only_a]
    if rows:
        header = ["action", "resource", "type", "why / what", "cost at max (USD/month)"]
        sections.append(Section("Changes", table(header, capped(rows, CHANGE_ROWS, len(header)))))
    else:
        sections.append(Section("Changes", [f"The change declares the same resources as `{review.ref}`."]))
    if review.introduced:
        sections.append(
            Section(
                f"Policy findings introduced by this change ({len(review.introduced)})",
                table(
                    ["severity", "policy", "resource", "problem", "fix"],
                    capped(_findings_rows(review.introduced), FINDING_ROWS, 5),
                ),
            )
        )
    costs = review.cost_changes
    if costs:
        lines = [f"- `{c.resource}` ({c.action}): {c.summary()}" for c in costs]
        sections.append(Section(f"Cost change by resource ({len(costs)})", lines, collapsed=True))
    if review.resolved:
        rows_resolved = _findings_rows(review.resolved)
        sections.append(
            Section(
                f"Policy findings resolved by this change ({len(review.resolved)})",
                table(["severity", "policy", "resource", "problem", "fix"], rows_resolved),
                collapsed=True,
            )
        )
    if review.existing:
        sections.append(
            Section(
                f"Policy findings already on `{review.ref}` ({len(review.existing)})",
                table(["severity", "policy", "resource", "problem", "fix"], _findings_rows(review.existing)),
                collapsed=True,
            )
        )
    for c in (*d.replaced, *d.updated):
        forced = {r.path for r in c.replace}
        rows_c = [(f"`{p.path}`", cell(p.a), cell(p.b), "yes" if p.path in forced else "") for p in c.changes]
        sections.append(
            Section(
                f"{c.action}: `{c.name_b}` ({c.type})",
                table(["property", "before", "after", "forces replace"], rows_c),
                collapsed=True,
            )
        )
    return sections


def render_change(review: ChangeReview, *, github: bool = False, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The change as Markdown: destructive changes and a summary first, then the changes, the
    new findings, and (collapsed on GitHub) cost by resource, older findings and property
    changes. With `github`, a hidden marker line comes first (CI finds its comment by it) and
    the text fits in `limit` characters: the last sections are cut, with a note, if needed."""
    base = f"`{review.ref}`" + (f" ({review.commit[:_SHORT]})" if review.commit else "")
    if review.base_missing:
        base += ", where the stack has no file"
    preamble = [
        f"## trainstack review: `{review.stack}` ({review.head.environment}) against {base}",
        "",
        *_destructive_lines(review),
        *_summary(review),
    ]
    if github:
        preamble.insert(0, MARKER.format(stack=review.stack))
    return fit_comment(preamble, _sections(review), collapsible=github, limit=limit if github else None)
