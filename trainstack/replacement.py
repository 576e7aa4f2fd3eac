"""Which input changes replace a resource instead of updating it in place, and which
resources hold data that a delete or a replace loses.

Two sources decide a replace, as `pulumi up` would:

- the component's own `replace_on_changes` (recorded with each resource in the offline
  plan): `properties.properties.vmSize` on a GPU cluster, `properties` on a job. A pattern
  covers the path itself and everything under it; `*` covers every input; `[*]` any list item.
- Azure's create-only inputs, which the azure-native provider replaces on by itself: every
  segment of the resource's URL (`resourceGroupName`, `accountName`, `computeName`: a new
  value is another resource) and `location` (a tracked resource cannot move regions; ARM's
  `x-ms-mutability: [create, read]`).

The resource's new declaration decides (Pulumi reads the goal's options), so adding a
`replace_on_changes` in a change applies to that change already.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from policies import tokens as t

COMPONENT = "component"  # the component's replace_on_changes
AZURE = "azure"  # a create-only input of the Azure API


@dataclass(frozen=True)
class ReplaceOptions:
    """A resource's replace options as its component declared them."""

    replace_on_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "replace_on_changes": list(self.replace_on_changes),
            "delete_before_replace": self.delete_before_replace,
        }


@dataclass(frozen=True)
class ReplaceReason:
    """One changed input that forces a replace, and who says so (`component` or `azure`)."""

    path: str
    source: str
    rule: str  # the pattern or the Azure rule that matched

    def describe(self) -> str:
        if self.source == COMPONENT and self.rule == self.path:
            return f"`{self.path}` (immutable: the component replaces on a change of it)"
        if self.source == COMPONENT:
            return f"`{self.path}` (immutable: the component replaces on a change under `{self.rule}`)"
        return f"`{self.path}` ({self.rule})"

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "source": self.source, "rule": self.rule}


def _url_segments() -> dict[str, tuple[str, ...]]:
    """The inputs that make up each type's Azure resource id, from the offline plan's id
    templates (`.../storageAccounts/{accountName}/...`)."""
    from trainstack.plan import _ID_TEMPLATES

    return {
        type_token: tuple(dict.fromkeys(re.findall(r"\{(\w+)\}", template)))
        for type_token, (template, _) in _ID_TEMPLATES.items()
    }


# Types whose id the plan does not template: their URL segments, as azure-native names them.
_EXTRA_URL_SEGMENTS: dict[str, tuple[str, ...]] = {
    "azure-native:authorization:RoleAssignment": ("scope", "roleAssignmentName"),
    "azure-native:authorization:RoleDefinition": ("scope", "roleDefinitionId"),
    "azure-native:network:PrivateEndpoint": ("resourceGroupName", "privateEndpointName"),
    "azure-native:network:PrivateDnsZoneGroup": (
        "resourceGroupName",
        "privateEndpointName",
        "privateDnsZoneGroupName",
    ),
    "azure-native:privatedns:PrivateZone": ("resourceGroupName", "privateZoneName"),
    "azure-native:privatedns:VirtualNetworkLink": (
        "resourceGroupName",
        "privateZoneName",
        "virtualNetworkLinkName",
    ),
}


def url_segments(type_token: str) -> tuple[str, ...]:
    """The inputs that form `type_token`'s resource id; `resourceGroupName` for a type not
    known here (every resource-group-scoped Azure resource has it in its URL)."""
    known = {**_url_segments(), **_EXTRA_URL_SEGMENTS}
    return known.get(type_token, ("resourceGroupName",))


def _matches(pattern: str, path: str) -> bool:
    """Pulumi's replaceOnChanges semantics: the pattern names the path or one of its parents."""
    if pattern == "*":
        return True
    regex = re.escape(pattern).replace(r"\[\*\]", r"\[\d+\]").replace(r"\*", r"[^.\[]+")
    return re.fullmatch(rf"{regex}(?:[.\[].*)?", path) is not None


def replace_reasons(
    type_token: str, changed_paths: Iterable[str], patterns: Sequence[str] = ()
) -> tuple[ReplaceReason, ...]:
    """The changed paths that force a replace of a `type_token` resource whose component
    replaces on `patterns`; empty when the change updates it in place."""
    segments = set(url_segments(type_token))
    out: list[ReplaceReason] = []
    for path in changed_paths:
        rule = next((p for p in patterns if _matches(p, path)), None)
        if rule is not None:
            out.append(ReplaceReason(path, COMPONENT, rule))
        elif path in segments:
            out.append(
                ReplaceReason(path, AZURE, "part of the Azure resource id: a new value is another resource")
            )
        elif path == "location":
            out.append(ReplaceReason(path, AZURE, "create-only in Azure: a resource cannot move regions"))
    return tuple(out)


# What each stateful type holds: lost when it is deleted or replaced.
STATEFUL: Mapping[str, str] = {
    t.STORAGE_ACCOUNT: "storage account: its blobs, files and queues",
    "azure-native:storage:BlobContainer": "blob container: the data a datastore points at",
    "azure-native:storage:FileShare": "file share: its files",
    t.KEY_VAULT: "key vault: its keys and secrets (soft-deleted, the name blocked until purged)",
    t.ML_WORKSPACE: "Azure ML workspace: its runs, models and registered assets "
    "(soft-deleted, the name blocked until purged)",
    "azure-native:operationalinsights:Workspace": "Log Analytics workspace: the logs it holds",
    t.CONTAINER_REGISTRY: "container registry: the images pushed to it",
}


def stateful_reason(type_token: str) -> str | None:
    """What a delete or replace of this type loses; None for a resource that holds no data."""
    return STATEFUL.get(type_token)
