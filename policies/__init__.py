"""Policy rules for trainstack stacks, as plain functions over declared resources.

`evaluate(resources, context)` runs them for `trainstack review`; `policies/__main__.py`
wraps the same functions as a Pulumi CrossGuard pack for
`pulumi preview --policy-pack policies`. See docs/policies.md for the list.
"""

from policies.model import Finding, Policy, PolicyContext, Resource, Severity, SkuFacts, Violation
from policies.registry import ALL_POLICIES, POLICY_IDS, evaluate, policy

__all__ = [
    "ALL_POLICIES",
    "POLICY_IDS",
    "Finding",
    "Policy",
    "PolicyContext",
    "Resource",
    "Severity",
    "SkuFacts",
    "Violation",
    "evaluate",
    "policy",
]
