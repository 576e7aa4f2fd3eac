"""Each policy on a compliant and a breaking resource, through the same `evaluate` that
`trainstack review` runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from policies import ALL_POLICIES, POLICY_IDS, Resource, Severity, evaluate, policy
from policies.compute import iso_seconds
from policies.tokens import TAGGABLE
from tests.review import records as rec
from tests.review.records import autoscale, cluster, deep, pool

A = "properties.properties."

# (policy id, environment, resources that break it and nothing unrelated to it)
BREAKING: list[tuple[str, str, Callable[[], list[Resource]]]] = [
    ("storage-https-only", "dev", lambda: [deep(rec.storage(), enableHttpsTrafficOnly=False)]),
    ("storage-tls12", "dev", lambda: [deep(rec.storage(), minimumTlsVersion="TLS1_0")]),
    ("storage-tls12", "dev", lambda: [deep(rec.storage(), minimumTlsVersion=...)]),
    ("storage-no-public-blob-access", "dev", lambda: [deep(rec.storage(), allowBlobPublicAccess=True)]),
    ("storage-no-public-blob-access", "dev", lambda: [deep(rec.storage(), allowBlobPublicAccess=...)]),
    (
        "keyvault-recoverable",
        "prod",
        lambda: [deep(rec.vault(), **{"properties.enablePurgeProtection": ...})],
    ),
    ("keyvault-recoverable", "prod", lambda: [deep(rec.vault(), **{"properties.enableSoftDelete": False})]),
    ("workspace-no-public-network", "prod", lambda: [deep(rec.workspace(), publicNetworkAccess="Enabled")]),
    ("workspace-no-public-network", "prod", lambda: [deep(rec.workspace(), publicNetworkAccess=...)]),
    (
        "datastore-identity-access",
        "prod",
        lambda: [deep(rec.datastore(), **{"properties.credentials.credentialsType": "AccountKey"})],
    ),
    (
        "compute-ssh-closed",
        "dev",
        lambda: [deep(cluster(), **{A + "remoteLoginPortPublicAccess": "Enabled"})],
    ),
    (
        "compute-ssh-closed",
        "dev",
        lambda: [deep(cluster(), **{A + "remoteLoginPortPublicAccess": "NotSpecified", A + "subnet": ...})],
    ),
    (
        "compute-ssh-closed",
        "dev",
        lambda: [
            deep(
                cluster(),
                **{
                    A + "remoteLoginPortPublicAccess": "Enabled",
                    A + "userAccountCredentials": {"adminUserName": "a", "adminUserPassword": "hunter2"},
                },
            )
        ],
    ),
    (
        "compute-ssh-private-in-prod",
        "prod",
        lambda: [
            deep(
                cluster(),
                **{
                    A + "remoteLoginPortPublicAccess": "Enabled",
                    A + "userAccountCredentials": {
                        "adminUserName": "a",
                        "adminUserSshPublicKey": "ssh-ed25519 AAA",
                    },
                },
            )
        ],
    ),
    ("compute-no-public-ip", "prod", lambda: [deep(cluster(), **{A + "enableNodePublicIp": True})]),
    ("compute-no-public-ip", "prod", lambda: [deep(cluster(), **{A + "enableNodePublicIp": ...})]),
    (
        "compute-no-public-ip",
        "prod",
        lambda: [
            deep(
                pool(),
                **{
                    "virtualMachineProfile.networkProfile.networkInterfaceConfigurations": [
                        {
                            "name": "nic",
                            "ipConfigurations": [
                                {"name": "ip", "publicIPAddressConfiguration": {"name": "pip"}}
                            ],
                        }
                    ]
                },
            )
        ],
    ),
    (
        "evictable-scales-from-zero",
        "dev",
        lambda: [deep(cluster(), **{A + "vmPriority": "LowPriority", A + "scaleSettings.minNodeCount": 1})],
    ),
    ("evictable-scales-from-zero", "dev", lambda: [pool(), autoscale(minimum=2)]),
    ("evictable-scales-from-zero", "dev", lambda: [pool(capacity=3)]),
    (
        "compute-idle-scale-down",
        "dev",
        lambda: [deep(cluster(), **{A + "scaleSettings.nodeIdleTimeBeforeScaleDown": "PT1H"})],
    ),
    (
        "compute-idle-scale-down",
        "dev",
        lambda: [deep(cluster(), **{A + "scaleSettings.nodeIdleTimeBeforeScaleDown": "soon"})],
    ),
    ("gpu-sku-not-retired", "dev", lambda: [cluster(vm_size="Standard_NC6s_v3")]),
    ("gpu-sku-not-retired", "dev", lambda: [pool(vm_size="standard_nc6s_v3"), autoscale()]),
    ("gpu-sku-retiring", "dev", lambda: [cluster(vm_size="Standard_NC4as_T4_v3")]),
    ("storage-private-network", "prod", lambda: [deep(rec.storage(), publicNetworkAccess="Enabled")]),
    ("storage-private-network", "prod", lambda: [deep(rec.storage(), publicNetworkAccess=...)]),
    ("storage-private-network", "prod", lambda: [deep(rec.storage(), networkRuleSet=...)]),
    (
        "keyvault-private-network",
        "prod",
        lambda: [deep(rec.vault(), **{"properties.publicNetworkAccess": "Enabled"})],
    ),
    ("keyvault-private-network", "prod", lambda: [deep(rec.vault(), **{"properties.networkAcls": ...})]),
    ("storage-no-shared-key", "prod", lambda: [deep(rec.storage(), allowSharedKeyAccess=True)]),
    ("storage-no-shared-key", "prod", lambda: [deep(rec.storage(), allowSharedKeyAccess=...)]),
    ("identity-least-privilege", "dev", lambda: [rec.role(scope=rec.ACCOUNT_SCOPE)]),
    (
        "identity-least-privilege",
        "prod",
        lambda: [rec.role("974c5e8b-45b9-4653-ba55-5f855dd0fb88", rec.ACCOUNT_SCOPE)],
    ),
    (
        "identity-least-privilege",
        "prod",
        lambda: [rec.role("b24988ac-6180-42a0-ab88-20f7382dd24c", "/subscriptions/s/resourceGroups/g")],
    ),
    (
        "identity-least-privilege",
        "prod",
        lambda: [rec.role("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", rec.ACCOUNT_SCOPE)],
    ),
    ("image-build-in-vnet", "dev", lambda: [rec.storage(), rec.image_template(subnet=None)]),
    ("compute-public-ip-outside-prod", "dev", lambda: [deep(cluster(), **{A + "enableNodePublicIp": True})]),
    ("required-tags", "dev", lambda: [deep(rec.storage(), tags={"environment": "dev"})]),
    ("required-tags", "dev", lambda: [deep(cluster(), tags=...)]),
]


def test_compliant_stack_has_no_findings_in_any_environment() -> None:
    for env in ("dev", "test", "prod"):
        assert evaluate(rec.compliant_stack(), rec.ctx(env, budget_usd=1_000_000)) == []


def test_every_policy_has_a_breaking_case() -> None:
    assert {case[0] for case in BREAKING} | {"monthly-budget"} == POLICY_IDS


@pytest.mark.parametrize(
    ("policy_id", "env", "make"), BREAKING, ids=[f"{c[0]}-{i}" for i, c in enumerate(BREAKING)]
)
def test_breaking_resource_is_named_by_its_policy(
    policy_id: str, env: str, make: Callable[[], list[Resource]]
) -> None:
    resources = make()
    findings = evaluate(resources, rec.ctx(env))
    assert {f.policy for f in findings} == {policy_id}
    f = findings[0]
    assert f.resource in {r.name for r in resources}
    assert f.message and f.fix
    assert f.severity == policy(policy_id).severity


@pytest.mark.parametrize(
    ("policy_id", "make"),
    [
        ("keyvault-recoverable", lambda: deep(rec.vault(), **{"properties.enablePurgeProtection": False})),
        ("workspace-no-public-network", lambda: deep(rec.workspace(), publicNetworkAccess="Enabled")),
        (
            "datastore-identity-access",
            lambda: deep(rec.datastore(), **{"properties.credentials.credentialsType": "Sas"}),
        ),
        ("storage-private-network", lambda: deep(rec.storage(), publicNetworkAccess="Enabled")),
        (
            "keyvault-private-network",
            lambda: deep(rec.vault(), **{"properties.publicNetworkAccess": "Enabled"}),
        ),
        ("storage-no-shared-key", lambda: deep(rec.storage(), allowSharedKeyAccess=True)),
        (
            "compute-ssh-private-in-prod",
            lambda: deep(
                cluster(),
                **{
                    A + "remoteLoginPortPublicAccess": "Enabled",
                    A + "userAccountCredentials": {
                        "adminUserName": "a",
                        "adminUserSshPublicKey": "ssh-ed25519 AAA",
                    },
                },
            ),
        ),
    ],
)
def test_prod_only_rules_leave_dev_alone(policy_id: str, make: Callable[[], Resource]) -> None:
    assert evaluate([make()], rec.ctx("dev")) == []
    assert [f.policy for f in evaluate([make()], rec.ctx("prod"))] == [policy_id]


def test_public_node_ips_are_mandatory_in_prod_and_advisory_elsewhere() -> None:
    public = deep(cluster(), **{A + "enableNodePublicIp": True})
    assert [(f.policy, f.severity) for f in evaluate([public], rec.ctx("prod"))] == [
        ("compute-no-public-ip", Severity.MANDATORY)
    ]
    assert [(f.policy, f.severity) for f in evaluate([public], rec.ctx("dev"))] == [
        ("compute-public-ip-outside-prod", Severity.ADVISORY)
    ]


def test_shared_key_is_allowed_where_the_account_says_it_is_for_deployment_uploads() -> None:
    tagged = deep(
        rec.storage(), allowSharedKeyAccess=True, tags={**rec.TAGS, "shared-key-use": "deployment-uploads"}
    )
    assert evaluate([tagged], rec.ctx("prod")) == []
    other = deep(rec.storage(), allowSharedKeyAccess=True, tags={**rec.TAGS, "shared-key-use": "convenience"})
    assert [f.policy for f in evaluate([other], rec.ctx("prod"))] == ["storage-no-shared-key"]


def test_narrow_roles_pass_least_privilege() -> None:
    gallery = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/gal"
    queue = rec.ACCOUNT_SCOPE + "/queueServices/default/queues/pool-a"
    for narrow in (
        rec.role(),
        rec.role("8a0f0c08-91a1-4084-bc3d-661d67233fed", queue),
        rec.role("b24988ac-6180-42a0-ab88-20f7382dd24c", gallery),  # Image Builder writes one gallery
    ):
        assert evaluate([narrow], rec.ctx("prod")) == []


def test_an_image_build_needs_a_vnet_only_where_its_files_are_private() -> None:
    outside = rec.image_template(subnet=None)
    (finding,) = evaluate([rec.storage(), outside], rec.ctx("dev"))
    assert finding.policy == "image-build-in-vnet" and finding.resource == "pool-template"
    assert "st, which refuses public network access" in finding.message
    public = deep(rec.storage(), publicNetworkAccess="Enabled", networkRuleSet=...)
    assert evaluate([public, outside], rec.ctx("dev")) == []
    other = deep(rec.storage(), accountName="elsewhere")
    assert evaluate([other, outside], rec.ctx("dev")) == []


def test_idle_limit_applies_outside_prod_only() -> None:
    slow = deep(cluster(), **{A + "scaleSettings.nodeIdleTimeBeforeScaleDown": "PT45M"})
    assert evaluate([slow], rec.ctx("prod")) == []
    [finding] = evaluate([slow], rec.ctx("test"))
    assert "45 minutes" in finding.message


def test_ssh_with_key_only_is_allowed_outside_prod() -> None:
    asked = deep(
        cluster(),
        **{
            A + "remoteLoginPortPublicAccess": "Enabled",
            A + "userAccountCredentials": {"adminUserName": "a", "adminUserSshPublicKey": "ssh-ed25519 AAA"},
        },
    )
    assert evaluate([asked], rec.ctx("dev")) == []


def test_ssh_not_specified_on_a_subnet_is_closed() -> None:
    quiet = deep(cluster(), **{A + "remoteLoginPortPublicAccess": ...})
    assert evaluate([quiet], rec.ctx("dev")) == []


def test_retired_sku_names_date_and_successor() -> None:
    [finding] = evaluate([cluster(vm_size="Standard_NC6s_v3")], rec.ctx("dev"))
    assert "2025-09-30" in finding.message
    assert "Standard_NC24ads_A100_v4" in finding.message and finding.fix == "move to Standard_NC24ads_A100_v4"


def test_retiring_sku_far_away_is_not_flagged() -> None:
    far = rec.ctx("dev", today=rec.TODAY.replace(year=2025))
    assert evaluate([cluster(vm_size="Standard_NC4as_T4_v3")], far) == []


def test_severity_override_per_environment() -> None:
    broken = [deep(rec.storage(), minimumTlsVersion="TLS1_1")]
    [default] = evaluate(broken, rec.ctx("dev"))
    [relaxed] = evaluate(broken, rec.ctx("dev", severities={"storage-tls12": Severity.ADVISORY}))
    assert (default.severity, relaxed.severity) == (Severity.MANDATORY, Severity.ADVISORY)


def test_budget_at_maximum_scale() -> None:
    stack = [cluster(), pool(), autoscale(maximum=2)]  # 4 A100 dedicated + 2 A100 spot
    expected = round((4 * 3.673 + 2 * 1.1) * 730, 2)
    [over] = evaluate(stack, rec.ctx("dev", budget_usd=expected - 1))
    assert over.policy == "monthly-budget" and over.resource == "(stack)"
    assert f"{expected:,.2f}" in over.message
    assert evaluate(stack, rec.ctx("dev", budget_usd=expected)) == []
    assert evaluate(stack, rec.ctx("dev", budget_usd=None)) == []


def test_budget_cannot_be_checked_for_unknown_sizes() -> None:
    [finding] = evaluate([cluster(vm_size="Standard_XYZ")], rec.ctx("dev", budget_usd=10.0))
    assert finding.policy == "monthly-budget"
    assert "gpu (Standard_XYZ)" in finding.message


def test_findings_sorted_mandatory_first() -> None:
    stack = [
        deep(cluster(), **{A + "vmPriority": "LowPriority", A + "scaleSettings.minNodeCount": 1}),
        deep(rec.storage(), minimumTlsVersion=...),
    ]
    severities = [f.severity for f in evaluate(stack, rec.ctx("dev"))]
    assert severities == [Severity.MANDATORY, Severity.ADVISORY]


def test_policy_ids_unique_and_lookup() -> None:
    assert len(POLICY_IDS) == len(ALL_POLICIES)
    with pytest.raises(KeyError):
        policy("no-such-policy")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT120S", 120),
        ("PT30M", 1800),
        ("PT1H30M", 5400),
        ("P1D", 86400),
        ("pt2.5s", 2.5),
        ("PT", None),
        ("P", None),
        ("120", None),
    ],
)
def test_iso_seconds(text: str, seconds: float | None) -> None:
    assert iso_seconds(text) == seconds


def test_docs_list_every_policy() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "policies.md").read_text()
    assert [p for p in POLICY_IDS if f"| `{p}` |" not in text] == []


@pytest.mark.parametrize(
    "token",
    sorted(
        TAGGABLE
        | {
            "azure-native:machinelearningservices:Datastore",
            "azure-native:machinelearningservices:Job",
            "azure-native:storage:BlobContainer",
            "azure-native:authorization:RoleAssignment",
        }
    ),
)
def test_taggable_types_match_the_sdk(token: str) -> None:
    import importlib
    import inspect

    _, module, cls = token.split(":")
    resource = getattr(importlib.import_module(f"pulumi_azure_native.{module}"), cls)
    takes_tags = "tags" in inspect.signature(resource._internal_init).parameters
    assert takes_tags == (token in TAGGABLE)
