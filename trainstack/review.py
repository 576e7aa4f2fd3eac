"""A stack's review for a pull request: what it declares, what it costs, which policies it
breaks and, against a base stack, how the two differ. Rendered as Markdown (a pull request
comment) or JSON (for machines); both are built from one `Review` and are deterministic, so
that snapshots of them can be reviewed like code.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies import Finding, PolicyContext, Resource, Severity, evaluate
from trainstack.cost import CostEstimate, CostLine, estimate
from trainstack.diff import StackDiff
from trainstack.replacement import ReplaceOptions
from trainstack.review_text import money, table


@dataclass(frozen=True)
class Review:
    """Everything a review shows. `base_cost` and `diff` are set when compared with a base."""

    stack: str
    environment: str
    resources: tuple[Resource, ...]
    cost: CostEstimate
    findings: tuple[Finding, ...]
    diff: StackDiff | None = None
    base_cost: CostEstimate | None = None

    @property
    def mandatory(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.MANDATORY)

    @property
    def passed(self) -> bool:
        """False when a mandatory policy is broken: the review command exits 1."""
        return not self.mandatory

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stack": self.stack,
            "environment": self.environment,
            "passed": self.passed,
            "resources": [{"type": r.type, "name": r.name, "parent": r.parent} for r in self.resources],
            "cost": self.cost.as_json(),
            "findings": [f.as_json() for f in self.findings],
        }
        if self.diff is not None and self.base_cost is not None:
            out["base"] = {"cost": self.base_cost.as_json(), "diff": self.diff.as_json()}
        return out


def build_review(
    stack: str,
    resources: Sequence[Resource],
    ctx: PolicyContext,
    *,
    diff: StackDiff | None = None,
    base_resources: Sequence[Resource] = (),
) -> Review:
    """Run cost and policies over a stack's resources; with `diff`, price the base too."""
    return Review(
        stack=stack,
        environment=ctx.environment,
        resources=tuple(resources),
        cost=estimate(resources, ctx.catalog),
        findings=tuple(evaluate(resources, ctx)),
        diff=diff,
        base_cost=estimate(base_resources, ctx.catalog) if diff is not None else None,
    )


def to_json(review: Review) -> str:
    return json.dumps(review.as_json(), indent=2, sort_keys=True) + "\n"


# --- Markdown -------------------------------------------------------------------------------


def _range(cost: CostEstimate) -> str:
    return f"{money(cost.monthly_min)} – {money(cost.monthly_max)} {cost.currency}/month"


def _price_source(line: CostLine) -> str:
    if line.price_region is None:
        return "—"
    return f"{line.price_region}, {line.price_date}"


def _cost_section(cost: CostEstimate) -> list[str]:
    out = [
        "### Cost",
        "",
        f"Monthly estimate at minimum and at maximum scale ({cost.hours_per_month} h per node and month).",
        "",
    ]
    rows = [
        (
            f"`{line.resource}`",
            line.kind,
            line.vm_size or "—",
            line.priority or "—",
            f"{line.min_nodes}–{line.max_nodes}" if line.vm_size else "—",
            f"{line.hourly_usd:g}" if line.hourly_usd is not None and line.vm_size else "—",
            money(line.monthly_min),
            money(line.monthly_max),
            _price_source(line),
            line.note,
        )
        for line in cost.lines
    ]
    total_min, total_max = f"**{money(cost.monthly_min)}**", f"**{money(cost.monthly_max)}**"
    rows.append(("**total**", "", "", "", "", "", total_min, total_max, cost.currency, ""))
    header = ["resource", "kind", "VM size", "priority", "nodes", "USD/h per node", "monthly at min",
              "monthly at max", "price (region, date)", "note"]  # fmt: skip
    out.extend(table(header, rows))
    if cost.usage_based:
        out += ["", "Billed by use, not estimated: " + "; ".join(cost.usage_based) + "."]
    return out


def _findings_section(findings: Sequence[Finding]) -> list[str]:
    out = ["### Policy findings", ""]
    if not findings:
        return [*out, "No policy is broken."]
    for severity in Severity:
        group = [f for f in findings if f.severity is severity]
        if not group:
            continue
        out += [f"#### {severity.value.capitalize()} ({len(group)})", ""]
        rows = [(f"`{f.policy}`", f"`{f.resource}`", f.resource_type, f.message, f.fix) for f in group]
        out += [*table(["policy", "resource", "type", "problem", "fix"], rows), ""]
    return out[:-1]


def _diff_section(review: Review) -> list[str]:
    diff, base_cost = review.diff, review.base_cost
    assert diff is not None and base_cost is not None
    out = [
        f"### Compared with `{diff.a}`",
        "",
        f"Cost: `{diff.a}` {_range(base_cost)}; `{diff.b}` {_range(review.cost)}.",
        "",
    ]
    if diff.empty:
        return [*out, "The two stacks declare the same resources with the same inputs."]
    for title, only in ((f"Only in `{diff.a}`", diff.only_a), (f"Only in `{diff.b}`", diff.only_b)):
        if only:
            out += [f"**{title}:** " + ", ".join(f"`{r.name}` ({r.type})" for r in only), ""]
    for change in diff.changed:
        why = f": {'; '.join(r.describe() for r in change.replace)}" if change.replace else ""
        out += [f"**{change.action.capitalize()}:** `{change.name}` ({change.type}){why}", ""]
        rows = [(f"`{c.path}`", c.a, c.b) for c in change.changes]
        out += [*table(["property", diff.a, diff.b], rows), ""]
    return out[:-1]


def render_markdown(review: Review) -> str:
    """The review as a pull request comment: summary, resources by type, cost, findings, diff."""
    counts = Counter(f.severity for f in review.findings)
    verdict = "passes" if review.passed else "**fails**"
    out = [
        f"## trainstack review: `{review.stack}` ({review.environment})",
        "",
        f"- Policies: {verdict} — {counts[Severity.MANDATORY]} mandatory, "
        f"{counts[Severity.ADVISORY]} advisory finding(s)",
        f"- Cost: {_range(review.cost)}",
        f"- Resources: {len(review.resources)}",
        "",
        "### Resources by type",
        "",
    ]
    by_type = Counter(r.type for r in review.resources)
    out += table(["type", "count"], [(f"`{t}`", n) for t, n in sorted(by_type.items())])
    out += ["", *_cost_section(review.cost), "", *_findings_section(review.findings)]
    if review.diff is not None:
        out += ["", *_diff_section(review)]
    return "\n".join(out) + "\n"


# --- From a stack file ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStack:
    """A stack file, checked and run offline: its declared Azure resources, policy context,
    and each resource's replace options by (type, name)."""

    name: str
    resources: tuple[Resource, ...]
    context: PolicyContext
    options: Mapping[tuple[str, str], ReplaceOptions] = field(default_factory=dict)


def plan_stack(name: str, project_dir: str | Path = ".") -> PlannedStack:
    """Load `stacks/Pulumi.<name>.yaml`, run the program under mocks and keep the Azure
    resources (components and the stack itself are groupings, not resources to review).

    Raises ConfigError when the stack file, a job file it names, or its `trainstack:policies`
    is wrong; whatever the program raises when it refuses the config.
    """
    from policies.context import context_for
    from trainstack.cost import catalog_prices
    from trainstack.plan import record_stack
    from trainstack.stack import load_stack

    loaded = load_stack(name, project_dir)
    plan = record_stack(name, project_dir, stack=loaded)
    custom = [r for r in plan.resources if r.custom]
    resources = tuple(Resource(r.type, r.name, r.parent, r.inputs) for r in custom)
    options = {
        (r.type, r.name): ReplaceOptions(r.replace_on_changes, r.delete_before_replace) for r in custom
    }
    ctx = context_for(loaded.config, name, catalog_prices(), file=str(loaded.path))
    return PlannedStack(name, resources, ctx, options)


def review_stack(name: str, base: str | None = None, project_dir: str | Path = ".") -> Review:
    """The review of stack `name`, compared with stack `base` when given."""
    from trainstack.diff import diff_stacks

    head = plan_stack(name, project_dir)
    if base is None:
        return build_review(name, head.resources, head.context)
    other = plan_stack(base, project_dir)
    diff = diff_stacks(
        other.resources,
        head.resources,
        name_a=base,
        name_b=name,
        env_a=other.context.environment,
        env_b=head.context.environment,
        options=head.options,
    )
    return build_review(name, head.resources, head.context, diff=diff, base_resources=other.resources)
