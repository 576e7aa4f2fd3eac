"""Rules over the stack as a whole: every taggable resource carries the required tags, and
the stack fits its monthly budget when every cluster and pool runs at maximum scale."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from policies.model import Policy, PolicyContext, Resource, Severity, Violation
from policies.tokens import TAGGABLE


def _required_tags(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    tags = r.get("tags")
    present = set(tags) if isinstance(tags, Mapping) else set()
    missing = [t for t in ctx.required_tags if t not in present]
    if missing:
        yield Violation(
            r,
            "missing required tag(s): " + ", ".join(f"`{t}`" for t in missing),
            "pass the stack's `tags` to this resource (components merge them into every taggable child)",
        )


def _within_budget(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[Violation]:
    # Imported here: the cost estimate lives with the command line and imports this package.
    from trainstack.cost import estimate

    if ctx.budget_usd is None:
        return
    cost = estimate(resources, ctx.catalog)
    if cost.monthly_max > ctx.budget_usd:
        yield Violation(
            None,
            f"at maximum scale the stack costs {cost.monthly_max:,.2f} {cost.currency}/month, "
            f"over its budget of {ctx.budget_usd:,.2f}",
        )
    unpriced = [f"{line.resource} ({line.vm_size})" for line in cost.lines if line.resource in cost.unpriced]
    if unpriced:
        yield Violation(
            None,
            "cannot check the budget: the catalog has no price for " + ", ".join(unpriced),
            "add the sizes to the SKU catalog, or use sizes it lists",
        )


POLICIES: tuple[Policy, ...] = (
    Policy(
        "required-tags",
        "Every taggable resource carries the required tags",
        Severity.MANDATORY,
        "add the missing tags to the stack's `tags`",
        TAGGABLE,
        check=_required_tags,
    ),
    Policy(
        "monthly-budget",
        "The stack fits `trainstack:budget` at maximum scale",
        Severity.MANDATORY,
        "lower the clusters' and pools' maximum node counts, use Spot capacity, or raise `trainstack:budget`",
        check_stack=_within_budget,
    ),
)
