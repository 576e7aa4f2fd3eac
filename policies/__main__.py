"""The trainstack CrossGuard policy pack: `pulumi preview --policy-pack policies`.

Constructing the `PolicyPack` starts the analyzer's gRPC server and blocks until Pulumi
stops it, so nothing else may follow it here. The stack's severity overrides set each
policy's enforcement level when the stack's config is at hand at start; the rules read the
context again on every validation.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

# Pulumi runs this file from the pack's folder: import the rules as the `policies` package
# from the project root, and keep the folder itself off the path so that its module names
# (`data`, `model`, ...) cannot shadow other packages.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from pulumi_policy import PolicyPack  # noqa: E402

from policies.pack import crossguard_policy, enforcement, stack_context  # noqa: E402
from policies.registry import ALL_POLICIES  # noqa: E402

# One stack per analyzer process: read its config once.
_context = functools.cache(stack_context)

try:
    _levels = enforcement(ALL_POLICIES, _context())
except Exception:  # noqa: BLE001 - without a readable config, each policy keeps its default severity
    _levels = {}

PolicyPack(
    name="trainstack",
    policies=[crossguard_policy(p, _context) for p in ALL_POLICIES],
    initial_config=dict(_levels),
)
