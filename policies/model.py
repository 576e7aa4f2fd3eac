"""What a policy looks at and what it reports: a declared resource, the stack's context,
and a finding.

A `Resource` is one record of an offline plan (or of a CrossGuard request): its Pulumi type
token, logical name, parent and the inputs exactly as the azure-native provider receives
them (camelCase, nested mappings). Rules never see Pulumi objects, so the same function
serves `trainstack review`, the CrossGuard pack and the tests.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any


class Severity(enum.StrEnum):
    """MANDATORY findings fail a review (exit 1) and block `pulumi up` under CrossGuard."""

    MANDATORY = "mandatory"
    ADVISORY = "advisory"


@dataclass(frozen=True)
class Resource:
    """One declared resource: type token, logical name, parent's name and provider inputs."""

    type: str
    name: str
    parent: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def get(self, path: str, default: Any = None) -> Any:
        """The input at a dotted `path` (`properties.scaleSettings.minNodeCount`), or `default`
        when any step is missing or not a mapping."""
        node: Any = self.inputs
        for step in path.split("."):
            if not isinstance(node, Mapping) or step not in node:
                return default
            node = node[step]
        return node

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Resource:
        """From a plan record `{type, name, parent, inputs}`; a missing key raises KeyError."""
        return cls(
            type=str(record["type"]),
            name=str(record["name"]),
            parent=record.get("parent"),
            inputs=dict(record.get("inputs") or {}),
        )


@dataclass(frozen=True)
class SkuFacts:
    """What the rules and the cost estimate need to know about one VM size."""

    name: str
    price_per_hour_usd: float
    price_region: str
    price_date: str
    spot_price_per_hour_usd: float | None = None
    retired: date | None = None
    successor: str | None = None

    def retired_on(self, today: date) -> bool:
        return self.retired is not None and self.retired <= today


PRODUCTION_ENVIRONMENTS = frozenset({"prod", "production"})


@dataclass(frozen=True)
class PolicyContext:
    """The stack a resource belongs to: its environment, the tags every taggable resource
    must carry, its monthly budget (USD, None = no budget), per-policy severity overrides
    (`trainstack:policies`), the SKU catalog, and the day retirement dates are compared to."""

    environment: str
    required_tags: tuple[str, ...] = ()
    budget_usd: float | None = None
    severities: Mapping[str, Severity] = field(default_factory=dict)
    catalog: Mapping[str, SkuFacts] = field(default_factory=dict)
    today: date = field(default_factory=date.today)

    @property
    def is_prod(self) -> bool:
        return self.environment.lower() in PRODUCTION_ENVIRONMENTS

    def sku(self, name: str) -> SkuFacts | None:
        return find_sku(self.catalog, name)


def find_sku(catalog: Mapping[str, SkuFacts], name: str) -> SkuFacts | None:
    """Catalog entry for a VM size, matched without regard to case (Azure ignores it)."""
    found = catalog.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    return next((s for k, s in catalog.items() if k.lower() == lowered), None)


@dataclass(frozen=True)
class Violation:
    """What a rule returns: the resource it is about (None for the whole stack), the message
    and, where it differs from the policy's general fix, a specific one."""

    resource: Resource | None
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class Finding:
    """A violation with its policy's id and the severity that applies in this stack."""

    policy: str
    severity: Severity
    resource: str
    resource_type: str
    message: str
    fix: str

    def as_json(self) -> dict[str, str]:
        return {
            "policy": self.policy,
            "severity": self.severity.value,
            "resource": self.resource,
            "type": self.resource_type,
            "message": self.message,
            "fix": self.fix,
        }


ResourceCheck = Callable[[Resource, PolicyContext], Iterable[Violation]]
StackCheck = Callable[[Sequence[Resource], PolicyContext], Iterable[Violation]]


@dataclass(frozen=True)
class Policy:
    """A rule with an id, a default severity, what it checks and how to fix it.

    A policy has either `check` (one resource at a time, for the resource `types` listed;
    empty `types` = every type) or `check_stack` (all resources at once, for rules that
    relate resources to each other, such as the budget).
    """

    id: str
    title: str
    severity: Severity
    fix: str
    types: frozenset[str] = frozenset()
    check: ResourceCheck | None = None
    check_stack: StackCheck | None = None

    def applies_to(self, resource: Resource) -> bool:
        return not self.types or resource.type in self.types

    def violations(self, resources: Sequence[Resource], ctx: PolicyContext) -> list[Violation]:
        """Every violation of this policy in `resources`."""
        if self.check_stack is not None:
            return list(self.check_stack(resources, ctx))
        assert self.check is not None, f"policy {self.id} has no check"
        return [v for r in resources if self.applies_to(r) for v in self.check(r, ctx)]

    def severity_in(self, ctx: PolicyContext) -> Severity:
        return ctx.severities.get(self.id, self.severity)

    def findings(self, resources: Sequence[Resource], ctx: PolicyContext) -> list[Finding]:
        severity = self.severity_in(ctx)
        return [
            Finding(
                policy=self.id,
                severity=severity,
                resource=v.resource.name if v.resource else "(stack)",
                resource_type=v.resource.type if v.resource else "stack",
                message=v.message,
                fix=v.fix or self.fix,
            )
            for v in self.violations(resources, ctx)
        ]
