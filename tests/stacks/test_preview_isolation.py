"""`trainstack preview` of the pool and prod stacks shows what isolation declares: container-
and queue-scoped roles for the pool's identity, private endpoints with their DNS zones in prod."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from components.roles import STORAGE_BLOB_DELEGATOR
from trainstack.cli import app

ROOT = Path(__file__).resolve().parents[2]


def preview(stack: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["preview", "--stack", stack, "--json", "--project-dir", str(ROOT)])
    assert result.exit_code == 0, result.stderr
    resources: list[dict[str, Any]] = json.loads(result.stdout)["resources"]
    return resources


@pytest.mark.parametrize(
    ("stack", "pool", "datastore"),
    [("pool", "a100-spot", "training-data"), ("prod", "a100-pool", "curated-data")],
)
def test_the_pool_preview_shows_only_container_and_queue_scoped_data_roles(
    stack: str, pool: str, datastore: str
) -> None:
    grants = [
        r
        for r in preview(stack)
        if r["type"] == "azure-native:authorization:RoleAssignment" and r["parent"] == pool
    ]
    # the workspace grant (its MLflow server keeps the metrics) is the one outside the store
    workspace = [g for g in grants if "/storageAccounts/" not in g["inputs"]["scope"]]
    assert [g["inputs"]["scope"].rsplit("/", 2)[-2] for g in workspace] == ["workspaces"]
    # on the account only the delegator, which signs the jobs' SAS URLs and reads no data
    (delegator,) = [g for g in grants if g["inputs"]["roleDefinitionId"].endswith(STORAGE_BLOB_DELEGATOR)]
    assert "/" not in delegator["inputs"]["scope"].split("/storageAccounts/", 1)[1]
    grants = [g for g in grants if g not in workspace and g is not delegator]
    scopes = sorted(g["inputs"]["scope"].split("/storageAccounts/", 1)[1].split("/", 1)[1] for g in grants)
    assert scopes == sorted(
        [
            "blobServices/default/containers/pools",
            "blobServices/default/containers/runs",
            f"blobServices/default/containers/{datastore}",
            f"queueServices/default/queues/pool-{pool}",
            f"queueServices/default/queues/pool-{pool}",
            f"queueServices/default/queues/pool-{pool}-poison",
            # the autoscale gauges the pool's leader keeps: receive and delete, send
            f"queueServices/default/queues/pool-{pool}-demand",
            f"queueServices/default/queues/pool-{pool}-demand",
            f"queueServices/default/queues/pool-{pool}-idle",
            f"queueServices/default/queues/pool-{pool}-idle",
        ]
    )


def test_the_prod_preview_shows_private_endpoints_with_their_dns_zones() -> None:
    resources = preview("prod")
    endpoints = [r for r in resources if r["type"] == "azure-native:network:PrivateEndpoint"]
    groups = {
        g for r in endpoints for c in r["inputs"]["privateLinkServiceConnections"] for g in c["groupIds"]
    }
    assert groups == {"blob", "queue", "file", "dfs", "vault", "registry", "amlworkspace"}
    zones = {
        r["inputs"]["privateZoneName"]
        for r in resources
        if r["type"] == "azure-native:privatedns:PrivateZone"
    }
    assert "privatelink.dfs.core.windows.net" in zones and "privatelink.api.azureml.ms" in zones
    zone_groups = [r for r in resources if r["type"] == "azure-native:network:PrivateDnsZoneGroup"]
    assert {z["inputs"]["privateEndpointName"] for z in zone_groups} == {
        e["inputs"]["privateEndpointName"] for e in endpoints
    }
    accounts = [r for r in resources if r["type"] == "azure-native:storage:StorageAccount"]
    assert accounts and all(a["inputs"]["publicNetworkAccess"] == "Disabled" for a in accounts)
