"""Hand-made resource records, compliant with every policy in prod unless told otherwise.

`deep(base, **paths)` returns a copy of a record's inputs with dotted paths replaced, so a
test states only the one field that breaks a rule.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from policies import PolicyContext, Resource, SkuFacts
from policies import tokens as t

TAGS = {"environment": "prod", "owner": "ml-platform"}

CATALOG = {
    "Standard_NC24ads_A100_v4": SkuFacts("Standard_NC24ads_A100_v4", 3.673, "eastus", "2025-06-01", 1.1),
    "Standard_ND96isr_H100_v5": SkuFacts("Standard_ND96isr_H100_v5", 98.32, "eastus", "2025-06-01"),
    "Standard_NC6s_v3": SkuFacts(
        "Standard_NC6s_v3",
        3.06,
        "eastus",
        "2025-06-01",
        retired=date(2025, 9, 30),
        successor="Standard_NC24ads_A100_v4",
    ),
    "Standard_NC4as_T4_v3": SkuFacts(
        "Standard_NC4as_T4_v3",
        0.526,
        "eastus",
        "2025-06-01",
        retired=date(2026, 12, 1),
        successor="Standard_NC8as_T4_v3",
    ),
}
TODAY = date(2026, 6, 1)


def ctx(environment: str = "prod", **kw: Any) -> PolicyContext:
    kw.setdefault("required_tags", tuple(TAGS))
    kw.setdefault("catalog", CATALOG)
    kw.setdefault("today", TODAY)
    return PolicyContext(environment=environment, **kw)


def deep(resource: Resource, **paths: Any) -> Resource:
    """`deep(r, **{"properties.enableSoftDelete": False})`; a value of `...` deletes the key."""
    inputs = copy.deepcopy(dict(resource.inputs))
    for path, value in paths.items():
        *parents, leaf = path.split(".")
        node = inputs
        for step in parents:
            node = node.setdefault(step, {})
        if value is ...:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return Resource(resource.type, resource.name, resource.parent, inputs)


def storage() -> Resource:
    return Resource(
        t.STORAGE_ACCOUNT,
        "ws-storage",
        "ws",
        {
            "accountName": "st",
            "enableHttpsTrafficOnly": True,
            "minimumTlsVersion": "TLS1_2",
            "allowBlobPublicAccess": False,
            "publicNetworkAccess": "Disabled",
            "networkRuleSet": {"defaultAction": "Deny", "bypass": "AzureServices"},
            "allowSharedKeyAccess": False,
            "tags": TAGS,
        },
    )


ACCOUNT_SCOPE = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/st"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


def role(
    role_id: str = BLOB_DATA_CONTRIBUTOR, scope: str = ACCOUNT_SCOPE + "/blobServices/default/containers/runs"
) -> Resource:
    return Resource(
        t.ROLE_ASSIGNMENT,
        "pool-blob-runs",
        "pool",
        {
            "principalId": "p",
            "principalType": "ServicePrincipal",
            "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
            + role_id,
            "scope": scope,
        },
    )


def vault() -> Resource:
    return Resource(
        t.KEY_VAULT,
        "ws-vault",
        "ws",
        {
            "properties": {
                "enablePurgeProtection": True,
                "enableSoftDelete": True,
                "publicNetworkAccess": "Disabled",
                "networkAcls": {"defaultAction": "Deny"},
            },
            "tags": TAGS,
        },
    )


def workspace() -> Resource:
    return Resource(t.ML_WORKSPACE, "ws", None, {"publicNetworkAccess": "Disabled", "tags": TAGS})


def datastore() -> Resource:
    return Resource(
        t.ML_DATASTORE,
        "data",
        "ws",
        {"properties": {"datastoreType": "AzureBlob", "credentials": {"credentialsType": "None"}}},
    )


def cluster(name: str = "gpu", vm_size: str = "Standard_NC24ads_A100_v4", **props: Any) -> Resource:
    inner = {
        "vmSize": vm_size,
        "vmPriority": "Dedicated",
        "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 4, "nodeIdleTimeBeforeScaleDown": "PT1800S"},
        "remoteLoginPortPublicAccess": "Disabled",
        "enableNodePublicIp": False,
        "subnet": {
            "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/n"
        },
    }
    inner.update(props)
    return Resource(
        t.ML_COMPUTE,
        name,
        "ws",
        {"computeName": name, "properties": {"computeType": "AmlCompute", "properties": inner}, "tags": TAGS},
    )


def pool(
    name: str = "pool", vm_size: str = "Standard_NC24ads_A100_v4", priority: str = "Spot", capacity: int = 0
) -> Resource:
    return Resource(
        t.SCALE_SET,
        f"{name}-vmss",
        name,
        {
            "sku": {"name": vm_size, "capacity": capacity},
            "virtualMachineProfile": {
                "priority": priority,
                "networkProfile": {
                    "networkInterfaceConfigurations": [
                        {"name": "nic", "ipConfigurations": [{"name": "ip", "subnet": {"id": "sub"}}]}
                    ]
                },
            },
            "tags": TAGS,
        },
    )


def autoscale(pool_name: str = "pool", minimum: int = 0, maximum: int = 8) -> Resource:
    return Resource(
        t.AUTOSCALE,
        f"{pool_name}-autoscale",
        pool_name,
        {
            "profiles": [
                {
                    "name": "queue",
                    "capacity": {"minimum": str(minimum), "maximum": str(maximum), "default": "0"},
                }
            ],
            "tags": TAGS,
        },
    )


def image_template(
    subnet: str
    | None = "/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/b",
) -> Resource:
    """An agent image template downloading its wheel from account `st` (`storage()`)."""
    profile: dict[str, Any] = {"vmSize": "Standard_D4ds_v5"}
    if subnet is not None:
        profile["vnetConfig"] = {"subnetId": subnet, "proxyVmSize": "Standard_A1_v2"}
    return Resource(
        t.IMAGE_TEMPLATE,
        "pool-template",
        "pool-agent-image",
        {
            "customize": [
                {"type": "File", "sourceUri": "https://st.blob.core.windows.net/agent-image/a.whl"},
                {"type": "Shell", "inline": ["true"]},
            ],
            "vmProfile": profile,
            "tags": TAGS,
        },
    )


def compliant_stack() -> list[Resource]:
    return [
        workspace(),
        storage(),
        vault(),
        datastore(),
        cluster(),
        pool(),
        autoscale(),
        role(),
        image_template(),
    ]
