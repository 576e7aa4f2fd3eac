"""Rules for the agent image build: an Image Builder template that downloads its files from a
private storage account must build inside a VNet.

Without `vmProfile.vnetConfig`, Image Builder puts its build VM in a network of its own with
a public IP; an account that refuses public traffic then refuses the download, and the build
fails after the stack is up (the first pool node has no image). The rule relates two resources,
the template and the account its `File` steps name, so it looks at the whole stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from policies.model import Policy, PolicyContext, Resource, Severity, Violation
from policies.tokens import IMAGE_TEMPLATE, STORAGE_ACCOUNT

_BLOB_HOST = re.compile(r"(?i)^https://([a-z0-9]+)\.blob\.core\.windows\.net/")


def _private_accounts(resources: Sequence[Resource]) -> set[str]:
    return {
        str(r.get("accountName")).lower()
        for r in resources
        if r.type == STORAGE_ACCOUNT and r.get("publicNetworkAccess") == "Disabled" and r.get("accountName")
    }


def _source_accounts(template: Resource) -> set[str]:
    steps = template.get("customize") or []
    found = (_BLOB_HOST.match(str(s.get("sourceUri") or "")) for s in steps if isinstance(s, dict))
    return {m.group(1).lower() for m in found if m}


def _builds_in_vnet(resources: Sequence[Resource], ctx: PolicyContext) -> Iterator[Violation]:
    private = _private_accounts(resources)
    for template in (r for r in resources if r.type == IMAGE_TEMPLATE):
        reached = sorted(_source_accounts(template) & private)
        if reached and not template.get("vmProfile.vnetConfig.subnetId"):
            yield Violation(
                template,
                f"the build VM downloads from {', '.join(reached)}, which refuses public network access, "
                "but has no vmProfile.vnetConfig: it builds outside the VNet and the download fails",
            )


POLICIES: tuple[Policy, ...] = (
    Policy(
        "image-build-in-vnet",
        "An image built from a private account builds inside the VNet",
        Severity.MANDATORY,
        "set `vmProfile.vnetConfig.subnetId` to a subnet of the VNet holding the account's private "
        "endpoint (trainstack does this for a pool in a stack with `publicNetworkAccess: false`; "
        "`pools[].image.buildSubnetId` picks another subnet)",
        check_stack=_builds_in_vnet,
    ),
)
