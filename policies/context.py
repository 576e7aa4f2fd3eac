"""The policy context of a stack, built from its validated `trainstack:` config.

Required tags are the ones the program itself puts on every taggable resource
(`components.stack.stack_tags`: environment, managed-by, stack and the stack's `tags`), so the
rule catches a resource a component forgot to tag. `trainstack:policies` overrides severities.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from components.config import StackConfig
from components.stack import stack_tags
from jobrunner.errors import ConfigError, Problem, did_you_mean
from policies.model import PolicyContext, Severity, SkuFacts
from policies.registry import POLICY_IDS


def severity_overrides(overrides: Mapping[str, str], *, file: str | None) -> dict[str, Severity]:
    """`trainstack:policies` as severities; an unknown policy id is a ConfigError naming the
    file, the key and the closest id."""
    problems = []
    for policy_id in overrides:
        if policy_id not in POLICY_IDS:
            guess = did_you_mean(policy_id, POLICY_IDS)
            fix = f"did you mean `{guess}`?" if guess else "see docs/policies.md for the policy ids"
            problems.append(Problem(file, f"trainstack:policies.{policy_id}", "no policy has this id", fix))
    if problems:
        raise ConfigError(problems)
    return {k: Severity(v) for k, v in overrides.items()}


def context_for(
    config: StackConfig,
    stack: str,
    catalog: Mapping[str, SkuFacts],
    *,
    file: str | None = None,
    today: date | None = None,
) -> PolicyContext:
    """The context the policies judge `stack` in. Raises ConfigError for unknown policy ids."""
    return PolicyContext(
        environment=config.environment,
        required_tags=tuple(sorted(stack_tags(config, stack))),
        budget_usd=config.budget,
        severities=severity_overrides(config.policies, file=file),
        catalog=catalog,
        today=today or date.today(),
    )
