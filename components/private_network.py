"""`PrivateNetwork`: private endpoints for a stack whose data planes refuse public traffic.

With `publicNetworkAccess: false` every storage account, the key vault, the container registry
and the workspace turn public access off; without a way in, the stack's own clusters and pool
could not reach them either. Each gets a private endpoint in the stack's subnet
(`workspace.privateEndpointSubnetId`), one per sub-resource it serves (`blob`, `queue`, `dfs`,
`vault`, `registry`, `amlworkspace`), and a DNS zone group that registers the endpoint's address
in Azure's `privatelink.*` zone for that sub-resource, so the public name resolves to the private
address inside the VNet. The zones are declared once per stack and linked to the subnet's VNet.
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
from pulumi_azure_native import network, privatedns, storage

# Sub-resource (the private link "group id") -> the private DNS zones its names resolve in.
ZONES: dict[str, tuple[str, ...]] = {
    "blob": ("privatelink.blob.core.windows.net",),
    "queue": ("privatelink.queue.core.windows.net",),
    "file": ("privatelink.file.core.windows.net",),
    "dfs": ("privatelink.dfs.core.windows.net",),
    "vault": ("privatelink.vaultcore.azure.net",),
    "registry": ("privatelink.azurecr.io",),
    "amlworkspace": ("privatelink.api.azureml.ms", "privatelink.notebooks.azure.net"),
}
_SUBNET = re.compile(r"(?i)(?P<vnet>.*/virtualNetworks/[^/]+)/subnets/[^/]+")


def account_network(private: bool) -> dict[str, Any]:
    """A storage account's network inputs: public, or public access off and a rule set that
    denies what the private endpoint does not bring (Azure's own services still pass)."""
    if not private:
        return {"public_network_access": "Enabled", "network_rule_set": None}
    return {
        "public_network_access": "Disabled",
        "network_rule_set": storage.NetworkRuleSetArgs(
            default_action=storage.DefaultAction.DENY, bypass=storage.Bypass.AZURE_SERVICES
        ),
    }


def vnet_of(subnet_id: str) -> str:
    """The VNet's ARM id from one of its subnets' (ValueError when it is not a subnet id)."""
    m = _SUBNET.fullmatch(subnet_id)
    if m is None:
        raise ValueError(f"not a subnet id: {subnet_id!r}")
    return m["vnet"]


def _zone_key(zone: str) -> str:
    return zone.removeprefix("privatelink.").replace(".", "-")


class PrivateNetwork(pulumi.ComponentResource):
    """The stack's private DNS zones (linked to the VNet) and the endpoints that register in them.

    Raises ValueError before declaring anything when `subnet_id` is not a subnet id.
    """

    def __init__(
        self,
        name: str,
        *,
        subnet_id: str,
        resource_group: pulumi.Input[str],
        location: str,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        self._vnet = vnet_of(subnet_id)
        super().__init__("trainstack:private_network:PrivateNetwork", name, None, opts)
        self._name = name
        self._subnet_id = subnet_id
        self._group = resource_group
        self._location = location
        self._tags = tags
        self._zones: dict[str, privatedns.PrivateZone] = {}
        self.endpoints: list[network.PrivateEndpoint] = []
        self.register_outputs({"vnet": self._vnet})

    def _zone(self, zone: str) -> privatedns.PrivateZone:
        found = self._zones.get(zone)
        if found is not None:
            return found
        key = _zone_key(zone)
        child = pulumi.ResourceOptions(parent=self)
        found = privatedns.PrivateZone(
            f"{self._name}-zone-{key}",
            private_zone_name=zone,
            resource_group_name=self._group,
            location="global",  # DNS zones are global resources
            tags=self._tags,
            opts=child,
        )
        privatedns.VirtualNetworkLink(
            f"{self._name}-link-{key}",
            virtual_network_link_name=f"link-{key}"[:80],
            private_zone_name=found.name,
            resource_group_name=self._group,
            location="global",
            virtual_network=privatedns.SubResourceArgs(id=self._vnet),
            # Only the endpoints register records; VMs of the VNet must not.
            registration_enabled=False,
            tags=self._tags,
            opts=child,
        )
        self._zones[zone] = found
        return found

    def connect(
        self, name: str, *, target_id: pulumi.Input[str], group: str, parent: pulumi.Resource
    ) -> network.PrivateEndpoint:
        """A private endpoint to sub-resource `group` of `target_id`, registered in its zones.

        `parent` is the component that owns the target (the endpoint goes and comes with it).
        """
        zones = [self._zone(z) for z in ZONES[group]]
        child = pulumi.ResourceOptions(parent=parent)
        endpoint = network.PrivateEndpoint(
            f"{name}-pe-{group}",
            private_endpoint_name=f"pe-{name}-{group}"[:80],
            resource_group_name=self._group,
            location=self._location,
            subnet=network.SubnetArgs(id=self._subnet_id),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name=f"{name}-{group}", private_link_service_id=target_id, group_ids=[group]
                )
            ],
            tags=self._tags,
            opts=child,
        )
        network.PrivateDnsZoneGroup(
            f"{name}-pe-{group}-dns",
            private_dns_zone_group_name="default",
            private_endpoint_name=endpoint.name,
            resource_group_name=self._group,
            private_dns_zone_configs=[
                network.PrivateDnsZoneConfigArgs(name=_zone_key(zone), private_dns_zone_id=resource.id)
                for zone, resource in zip(ZONES[group], zones, strict=True)
            ],
            opts=child,
        )
        self.endpoints.append(endpoint)
        return endpoint
