"""Contract: the pool stack's compute, image builder, monitor, identity and role assignment
inputs against Azure's own API models (azure-mgmt-compute, -imagebuilder, -monitor, -msi,
-authorization, -storage), each installed model's API version (read from the package's own request
builder) checked against the one azure-native 3.29 uses."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from azure.mgmt.authorization.v2022_04_01 import models as authorization
from azure.mgmt.compute import models as compute
from azure.mgmt.imagebuilder import models as imagebuilder
from azure.mgmt.monitor import models as monitor
from azure.mgmt.msi.v2024_11_30 import models as msi
from azure.mgmt.storage import models as storage

from tests.stacks.arm_contract import check
from trainstack.plan import StackPlan, record_stack

ROOT = Path(__file__).resolve().parents[2]

# type token -> (API model of the request body, inputs that are URL path parameters,
#                azure-native module, the API version azure-native 3.29 uses,
#                (the installed package's operations, their group, the request builder's verb))
CONTRACTS: dict[str, tuple[type, set[str], str, str, tuple[str, str, str]]] = {
    "azure-native:compute:VirtualMachineScaleSet": (
        compute.VirtualMachineScaleSet,
        {"resourceGroupName", "vmScaleSetName"},
        "compute.virtual_machine_scale_set",
        "2024-11-01",
        ("azure.mgmt.compute", "virtual_machine_scale_sets", "create_or_update"),
    ),
    "azure-native:compute:Gallery": (
        compute.Gallery,
        {"resourceGroupName", "galleryName"},
        "compute.gallery",
        "2024-03-03",
        ("azure.mgmt.compute", "galleries", "create_or_update"),
    ),
    "azure-native:compute:GalleryImage": (
        compute.GalleryImage,
        {"resourceGroupName", "galleryName", "galleryImageName"},
        "compute.gallery_image",
        "2024-03-03",
        ("azure.mgmt.compute", "gallery_images", "create_or_update"),
    ),
    "azure-native:virtualmachineimages:VirtualMachineImageTemplate": (
        imagebuilder.ImageTemplate,
        {"resourceGroupName", "imageTemplateName"},
        "virtualmachineimages.virtual_machine_image_template",
        "2024-02-01",
        ("azure.mgmt.imagebuilder", "virtual_machine_image_templates", "create_or_update"),
    ),
    "azure-native:monitor:AutoscaleSetting": (
        monitor.AutoscaleSettingResource,
        {"resourceGroupName", "autoscaleSettingName"},
        "monitor.autoscale_setting",
        "2021-05-01-preview",
        ("azure.mgmt.monitor", "autoscale_settings", "create_or_update"),
    ),
    "azure-native:managedidentity:UserAssignedIdentity": (
        msi.Identity,
        {"resourceGroupName", "resourceName"},
        "managedidentity.user_assigned_identity",
        "2023-01-31",
        ("azure.mgmt.msi.v2024_11_30", "user_assigned_identities", "create_or_update"),
    ),
    "azure-native:authorization:RoleAssignment": (
        authorization.RoleAssignmentCreateParameters,
        {"scope", "roleAssignmentName"},
        "authorization.role_assignment",
        "2022-04-01",
        ("azure.mgmt.authorization.v2022_04_01", "role_assignments", "create"),
    ),
    "azure-native:storage:Queue": (
        storage.StorageQueue,
        {"resourceGroupName", "accountName", "queueName"},
        "storage.queue",
        "2024-01-01",
        ("azure.mgmt.storage", "queue", "create"),
    ),
}


def installed_api_version(package: str, group: str, verb: str) -> str:
    """The API version the installed package sends for `group`'s `verb` request: read from its
    request builder (`build_<group>_<verb>_request` in one operations module, or
    `build_<verb>_request` in `_<group>_operations.py`)."""
    folder = Path(importlib.import_module(package).__file__ or "").parent / "operations"
    for path in sorted(folder.glob("*.py")):
        text = path.read_text()
        names = [f"build_{group}_{verb}_request"]
        if path.stem == f"_{group}_operations":
            names.append(f"build_{verb}_request")
        for name in names:
            start = text.find(f"def {name}(")
            if start < 0:
                continue
            body = text[start : text.find("\ndef ", start + 1)]
            found = re.search(r'"api-version", "([0-9a-z-]+)"', body) or re.search(
                r'api_version[^=]*=\s*"([0-9a-z-]+)"', body
            )
            if found:
                return found.group(1)
    raise AssertionError(f"{package} has no request builder for {group} {verb}")


@pytest.fixture(scope="module")
def plan() -> StackPlan:
    return record_stack("pool", ROOT)


@pytest.mark.parametrize("type_token", sorted(CONTRACTS))
def test_pool_inputs_match_the_azure_api(plan: StackPlan, type_token: str) -> None:
    model, path_params, *_ = CONTRACTS[type_token]
    resources = plan.of_type(type_token)
    assert resources, f"the pool stack declares no {type_token}"
    for resource in resources:
        body = {k: v for k, v in resource.inputs.items() if k not in path_params}
        assert check(body, model) == [], resource.name


@pytest.mark.parametrize("type_token", sorted(CONTRACTS))
def test_models_describe_the_api_version_azure_native_uses_or_a_newer_one(type_token: str) -> None:
    """A newer model only adds properties here; if azure-native moves, the table must be
    re-checked (a property it sends may have been renamed in between)."""
    _, _, module, native_version, operations = CONTRACTS[type_token]
    text = Path(importlib.import_module(f"pulumi_azure_native.{module}").__file__ or "").read_text()
    used = re.search(r"Uses Azure REST API version ([0-9a-z-]+)", text)
    assert used is not None and used.group(1) == native_version, (
        f"azure-native now uses {used and used.group(1)}"
    )
    model_version = installed_api_version(*operations)
    # ISO dates compare as text; a preview sorts after the release of its date, as it should not
    # matter here (no model in the table is a preview).
    assert model_version[:10] >= native_version[:10], (
        f"the installed models describe {model_version}, older than the {native_version} azure-native sends"
    )


def test_the_custom_role_models_describe_the_api_version_azure_native_uses() -> None:
    """The image builder's network role (declared by private stacks, checked in
    tests/stacks/test_contract.py) against the models of the version azure-native sends."""
    text = Path(importlib.import_module("pulumi_azure_native.authorization.role_definition").__file__ or "")
    used = re.search(r"Uses Azure REST API version ([0-9a-z-]+)", text.read_text())
    assert used is not None and used.group(1) == "2022-05-01-preview"
    installed = installed_api_version(
        "azure.mgmt.authorization.v2022_05_01_preview", "role_definitions", "create_or_update"
    )
    assert installed == "2022-05-01-preview"


def test_the_checker_catches_what_the_scale_set_api_refuses() -> None:
    bad = {
        "location": "westeurope",
        "sku": {"name": "Standard_NC24ads_A100_v4", "capacity": 0},
        "virtualMachineProfile": {"priority": "Cheap", "evictionPolicy": "Delete", "spotPrice": 1},
    }
    problems = check(bad, compute.VirtualMachineScaleSet)
    assert any("'Cheap' is not one of" in p for p in problems)
    assert any("spotPrice: not a property" in p for p in problems)
