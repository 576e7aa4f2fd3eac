"""`trainstack preview` of the pool and prod stacks shows what isolation declares: container-
and queue-scoped roles for the pool's identity, private endpoints with their DNS zones in prod."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from trainstack.cli import app

ROOT = Path(__file__).resolve().parents[2]


def preview(stack: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["preview", "--stack", stack, "--json", "--project-dir", str(ROOT)])
    assert result.exit_code == 0, result.stderr
    resources: list[dict[str, Any]] = json.loads(result.stdout)["resources"]
    return resources


def test_the_pool_preview_shows_only_container_and_queue_scoped_roles() -> None:
    grants = [
        r
        for r in preview("pool")
        if r["type"] == "azure-native:authorization:RoleAssignment" and r["parent"] == "a100-spot"
    ]
    # the workspace grant (its MLflow server keeps the metrics) is the one outside the store
    workspace = [g for g in grants if "/storageAccounts/" not in g["inputs"]["scope"]]
    assert [g["inputs"]["scope"].rsplit("/", 2)[-2] for g in workspace] == ["workspaces"]
    grants = [g for g in grants if g not in workspace]
    scopes = sorted(g["inputs"]["scope"].split("/storageAccounts/", 1)[1].split("/", 1)[1] for g in grants)
    assert scopes == [
        "blobServices/default/containers/pools",
        "blobServices/default/containers/runs",
        "blobServices/default/containers/training-data",
        "queueServices/default/queues/pool-a100-spot",
        "queueServices/default/queues/pool-a100-spot",
        "queueServices/default/queues/pool-a100-spot-poison",
    ]


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
