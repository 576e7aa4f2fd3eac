"""Every policy trainstack knows, and the one function that runs them over a stack."""

from __future__ import annotations

from collections.abc import Sequence

from policies import compute, data, image_build, isolation, stack
from policies.model import Finding, Policy, PolicyContext, Resource, Severity

ALL_POLICIES: tuple[Policy, ...] = (
    *data.POLICIES,
    *isolation.POLICIES,
    *image_build.POLICIES,
    *compute.POLICIES,
    *stack.POLICIES,
)
POLICY_IDS: frozenset[str] = frozenset(p.id for p in ALL_POLICIES)

_SEVERITY_ORDER = {Severity.MANDATORY: 0, Severity.ADVISORY: 1}


def evaluate(resources: Sequence[Resource], ctx: PolicyContext) -> list[Finding]:
    """Findings of every policy, mandatory first, then by policy id and resource name."""
    findings = [f for p in ALL_POLICIES for f in p.findings(resources, ctx)]
    return sorted(findings, key=lambda f: (_SEVERITY_ORDER[f.severity], f.policy, f.resource, f.message))


def policy(policy_id: str) -> Policy:
    """The policy with this id; KeyError when there is none."""
    for p in ALL_POLICIES:
        if p.id == policy_id:
            return p
    raise KeyError(policy_id)
