"""Golden snapshots of `trainstack preview --json` for every stack in `stacks/`.

Regenerate after an intended change with `TRAINSTACK_UPDATE_GOLDEN=1 pytest tests/stacks`
and review the diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainstack.cli import app
from trainstack.plan import record_stack
from trainstack.stack import stack_names

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


def canonical(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("stack", stack_names(ROOT))
def test_preview_json_matches_the_snapshot(stack: str) -> None:
    result = CliRunner().invoke(app, ["preview", "--stack", stack, "--project-dir", str(ROOT), "--json"])
    assert result.exit_code == 0, result.output
    text = canonical(json.loads(result.output))
    golden = GOLDEN / f"{stack}.json"
    if os.environ.get("TRAINSTACK_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no snapshot for {stack}: run with TRAINSTACK_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")


def test_dev_declares_what_a_training_workspace_needs() -> None:
    plan = json.loads(
        CliRunner().invoke(app, ["preview", "--stack", "dev", "--project-dir", str(ROOT), "--json"]).output
    )
    assert plan["stack"] == "dev"
    types = [r["type"] for r in plan["resources"]]
    for needed in (
        "azure-native:machinelearningservices:Workspace",
        "azure-native:storage:StorageAccount",
        "azure-native:keyvault:Vault",
        "azure-native:applicationinsights:Component",
    ):
        assert needed in types
    assert types.count("azure-native:machinelearningservices:Datastore") >= 2
    (compute,) = [r for r in plan["resources"] if r["type"] == "azure-native:machinelearningservices:Compute"]
    props = compute["inputs"]["properties"]
    assert props["computeType"] == "AmlCompute"
    assert props["properties"]["vmPriority"] == "LowPriority"
    assert props["properties"]["scaleSettings"]["minNodeCount"] == 0
    assert props["properties"]["vmSize"].startswith("Standard_NC")


def test_prod_is_private_with_two_clusters_in_a_subnet() -> None:
    plan = record_stack("prod", ROOT)
    (workspace,) = plan.of_type("azure-native:machinelearningservices:Workspace")
    assert workspace.inputs["publicNetworkAccess"] == "Disabled"
    computes = plan.of_type("azure-native:machinelearningservices:Compute")
    priorities = sorted(c.inputs["properties"]["properties"]["vmPriority"] for c in computes)
    assert priorities == ["Dedicated", "LowPriority"]
    assert all(
        c.inputs["properties"]["properties"]["subnet"]["id"].endswith("/subnets/snet-aml") for c in computes
    )
    kinds = sorted(
        d.inputs["properties"]["datastoreType"]
        for d in plan.of_type("azure-native:machinelearningservices:Datastore")
    )
    assert kinds == ["AzureBlob", "AzureDataLakeGen2", "AzureFile"]


def test_recording_twice_in_one_process_gives_the_same_plan() -> None:
    assert record_stack("dev", ROOT).to_json() == record_stack("dev", ROOT).to_json()


def test_preview_prints_a_tree_under_the_stack() -> None:
    result = CliRunner().invoke(app, ["preview", "--stack", "dev", "--project-dir", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert "pulumi:pulumi:Stack trainstack-dev" in result.output
    assert "azure-native:machinelearningservices:Compute a100-spot-compute" in result.output
