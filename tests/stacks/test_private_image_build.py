"""A private stack's agent image builds inside the stack's VNet: the template's
`vmProfile.vnetConfig`, the builder's network role, the config rules that pick the subnet, and
the review policy that fails a template left outside."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest

from components.agent_image import NETWORK_JOIN_ACTIONS, PROXY_VM_SIZE, recipe_digest
from components.config import SECRETS_FROM_FILE, PoolImageConfig, StackConfig
from policies import evaluate
from trainstack.review import plan_stack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "azure-native:virtualmachineimages:VirtualMachineImageTemplate"
VNET = "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-a"
GALLERY = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute"
OTHER_VNET = "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-b"


def test_the_prod_pools_image_builds_in_the_pools_subnet_with_a_network_join_role_only() -> None:
    planned = plan_stack("prod", ROOT)
    config = StackConfig.model_validate(
        _stack_file("prod"), context={SECRETS_FROM_FILE: True}
    )  # the same file the plan ran
    (pool,) = config.pools
    (template,) = [r for r in planned.resources if r.type == TEMPLATE]
    assert template.get("vmProfile.vnetConfig") == {"subnetId": pool.subnet_id, "proxyVmSize": PROXY_VM_SIZE}
    (definition,) = [r for r in planned.resources if r.type == "azure-native:authorization:RoleDefinition"]
    vnet = pool.subnet_id.split("/subnets/")[0]
    vnet_group = vnet.split("/providers/")[0]
    assert definition.get("permissions") == [{"actions": list(NETWORK_JOIN_ACTIONS)}]
    assert definition.get("assignableScopes") == [vnet_group] and definition.get("scope") == vnet_group
    assert definition.get("roleType") == "CustomRole"
    (grant,) = [
        r
        for r in planned.resources
        if r.type == "azure-native:authorization:RoleAssignment"
        and str(r.get("roleDefinitionId")).endswith("/" + definition.get("roleDefinitionId"))
    ]
    assert grant.get("scope") == vnet
    assert evaluate(planned.resources, planned.context) == []


def test_review_fails_a_private_stacks_image_built_outside_the_vnet() -> None:
    planned = plan_stack("prod", ROOT)
    outside = []
    for r in planned.resources:
        if r.type == TEMPLATE:
            inputs: dict[str, Any] = copy.deepcopy(dict(r.inputs))
            del inputs["vmProfile"]["vnetConfig"]
            r = type(r)(r.type, r.name, r.parent, inputs)
        outside.append(r)
    findings = evaluate(outside, planned.context)
    assert [(f.policy, f.severity.value) for f in findings] == [("image-build-in-vnet", "mandatory")]
    assert "refuses public network access" in findings[0].message


def test_a_public_stacks_image_builds_in_image_builders_own_network() -> None:
    planned = plan_stack("pool", ROOT)
    (template,) = [r for r in planned.resources if r.type == TEMPLATE]
    assert template.get("vmProfile.vnetConfig") is None
    assert not [r for r in planned.resources if r.type == "azure-native:authorization:RoleDefinition"]


def _stack_file(name: str) -> dict[str, Any]:
    import yaml

    raw = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("trainstack:")}


def _private(pool: dict[str, Any]) -> dict[str, Any]:
    return {
        "environment": "prod",
        "workspace": {
            "name": "mlw-test",
            "resourceGroup": "rg-test",
            "publicNetworkAccess": False,
            "privateEndpointSubnetId": VNET + "/subnets/endpoints",
        },
        "pools": [
            {
                "name": "gpu",
                "vmSize": "Standard_NC24ads_A100_v4",
                "maxNodes": 2,
                "subnetId": VNET + "/subnets/gpu",
                "ssh": {"adminUser": "azureuser", "publicKey": {"secure": "v1:abc:ZGVm"}},
                **pool,
            }
        ],
    }


def test_the_build_subnet_is_the_pools_own_unless_the_image_names_one() -> None:
    default = StackConfig.model_validate(_private({}))
    assert default.build_subnet(default.pools[0]) == VNET + "/subnets/gpu"
    named = StackConfig.model_validate(_private({"image": {"buildSubnetId": VNET + "/subnets/build"}}))
    assert named.build_subnet(named.pools[0]) == VNET + "/subnets/build"
    baked_elsewhere = StackConfig.model_validate(
        _private({"image": {"galleryImageId": GALLERY + "/galleries/x/images/y"}})
    )
    assert baked_elsewhere.build_subnet(baked_elsewhere.pools[0]) is None
    public = _private({})
    public["workspace"] = {"name": "mlw-test", "resourceGroup": "rg-test"}
    opened = StackConfig.model_validate(public)
    assert opened.build_subnet(opened.pools[0]) is None


@pytest.mark.parametrize(
    ("pool", "path"),
    [
        ({"subnetId": OTHER_VNET + "/subnets/gpu"}, "pools[0].subnetId"),
        ({"image": {"buildSubnetId": OTHER_VNET + "/subnets/build"}}, "pools[0].image.buildSubnetId"),
    ],
)
def test_a_private_stack_refuses_a_pool_or_build_outside_the_endpoints_vnet(
    pool: dict[str, Any], path: str
) -> None:
    data = _private(pool)
    (problem,) = StackConfig.model_validate(data, context={SECRETS_FROM_FILE: True}).reference_problems()
    assert problem.path == path and "vnet-a" in problem.fix and "private DNS zones" in problem.message
    with pytest.raises(pydantic.ValidationError, match="outside the VNet"):
        StackConfig.model_validate(data)


def test_a_build_subnet_is_checked_like_any_subnet_id() -> None:
    with pytest.raises(pydantic.ValidationError, match="not a subnet id"):
        PoolImageConfig.model_validate({"buildSubnetId": "snet-build"})


def test_a_new_build_subnet_is_a_new_template() -> None:
    image = PoolImageConfig()
    wheel = "jobrunner-0.1.0-py3-none-any.whl"
    digests = {recipe_digest(image, wheel, s) for s in (None, VNET + "/subnets/a", VNET + "/subnets/b")}
    assert len(digests) == 3
