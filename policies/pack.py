"""The policy rules as Pulumi CrossGuard policies, for
`pulumi preview --policy-pack policies` (see `policies/__main__.py`).

Each resource rule becomes a `ResourceValidationPolicy` that sees one resource's inputs;
rules over the whole stack (scale-from-zero, budget) become `StackValidationPolicy`s. The
stack's context (environment, tags, budget, severity overrides) comes from the stack's own
`trainstack:` config, which the Pulumi CLI hands to the policy pack as it does to the
program. Severity maps onto enforcement: mandatory blocks the update, advisory warns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.model import Policy, PolicyContext, Resource, Severity, Violation

ContextSource = Callable[[], PolicyContext]

_ENFORCEMENT = {Severity.MANDATORY: EnforcementLevel.MANDATORY, Severity.ADVISORY: EnforcementLevel.ADVISORY}


def stack_context() -> PolicyContext:
    """The running stack's policy context, from its `trainstack:` config (the Pulumi CLI
    passes the stack's config to the pack in `PULUMI_CONFIG`, as to the program).

    Raises ConfigError or a pydantic ValidationError when the config does not validate, as
    the program itself would.
    """
    for key, value in pulumi.runtime.get_config_env().items():
        pulumi.runtime.set_config(key, value)
    from components.config import StackConfig
    from policies.context import context_for
    from trainstack.cost import catalog_prices

    config = pulumi.Config("trainstack")
    data: dict[str, Any] = {}
    for name, field in StackConfig.model_fields.items():
        text = config.get(field.alias or name)
        if text is not None:
            try:
                data[field.alias or name] = json.loads(text)
            except ValueError:
                data[field.alias or name] = text
    return context_for(StackConfig.model_validate(data), pulumi.get_stack(), catalog_prices())


def _report(
    violations: list[Violation], policy: Policy, report: ReportViolation, urns: Mapping[str, str]
) -> None:
    for v in violations:
        fix = v.fix or policy.fix
        urn = urns.get(v.resource.name) if v.resource else None
        report(f"{v.message} ({fix})", urn)


def crossguard_policy(
    policy: Policy, context: ContextSource
) -> ResourceValidationPolicy | StackValidationPolicy:
    """One CrossGuard policy that runs `policy`'s check with the context `context()` gives.

    `context` is called on each validation, so that a pack starts before the stack's config
    is known; a failing context (invalid config) is raised to Pulumi, which reports it.
    """
    if policy.check_stack is not None:

        def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
            ctx = context()
            resources = [
                Resource(r.resource_type, r.name, r.parent.name if r.parent else None, r.props)
                for r in args.resources
            ]
            urns = {r.name: r.urn for r in args.resources}
            _report(policy.violations(resources, ctx), policy, report, urns)

        return StackValidationPolicy(validate=validate_stack, **_described(policy))

    def validate_resource(args: ResourceValidationArgs, report: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.name, None, args.props)
        if not policy.applies_to(resource):
            return
        _report(policy.violations([resource], context()), policy, report, {args.name: args.urn})

    return ResourceValidationPolicy(validate=validate_resource, **_described(policy))


def _described(policy: Policy) -> dict[str, Any]:
    """What CrossGuard shows of a policy, whichever kind it is: name, title, level and fix."""
    return {
        "name": policy.id,
        "description": policy.title,
        "enforcement_level": _ENFORCEMENT[policy.severity],
        "remediation_steps": policy.fix,
    }


def enforcement(policies: tuple[Policy, ...], ctx: PolicyContext) -> dict[str, EnforcementLevel]:
    """Each policy's enforcement level in this stack (its severity after overrides)."""
    return {p.id: _ENFORCEMENT[p.severity_in(ctx)] for p in policies}
