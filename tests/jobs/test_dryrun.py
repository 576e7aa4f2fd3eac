"""`jobrunner submit --dry-run`: every node's plan, as JSON and as tables."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from jobrunner.api import NodeFacts
from jobrunner.errors import LaunchError
from jobrunner.plan.dryrun import describe_plan, dry_run, render_plans
from jobrunner.spec.job import parse_job

JOB = """
command: python train.py --out ${{outputs.model}}
outputs: {model: }
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 2}
environment: {image: "pytorch/pytorch:2.4"}
"""


def test_placeholder_gang_plans_every_node() -> None:
    spec = parse_job(JOB, source="job.yml", check_paths=False)
    plans = dry_run(spec, 2)
    assert [p.node for p in plans] == ["node-0", "node-1"]
    assert all("--rdzv-endpoint=node-0:6105" in p.processes[0].argv for p in plans)
    assert (
        plans[0].processes[0].argv[-1].splitlines()[-1]
        == "python train.py --out /var/lib/jobrunner/runs/dry-run/1/outputs/model"
    )
    assert plans[0].notes[0].startswith("image pytorch/pytorch:2.4 not used")


def test_real_pool_nodes_and_too_small_a_pool() -> None:
    spec = parse_job(JOB, source="job.yml", check_paths=False)
    nodes = [
        NodeFacts("gpu-a", "10.1.0.4", gpus=8, container_runtime=True),
        NodeFacts("gpu-b", "10.1.0.5", gpus=8),
    ]
    plans = dry_run(spec, nodes)
    assert plans[0].image == "pytorch/pytorch:2.4" and plans[0].processes[0].argv[0] == "docker"
    assert plans[1].image is None
    with pytest.raises(LaunchError, match="needs 2 node"):
        dry_run(spec, nodes[:1])


def test_json_and_tables() -> None:
    spec = parse_job(JOB + "compute: azureml:gpu\n", source="job.yml", check_paths=False)
    doc = describe_plan(spec, 2)
    json.dumps(doc)  # JSON-able
    assert doc["notes"] == ["`compute` is not used on a pool"]
    assert doc["nodes"][1]["processes"][0]["env"]["NODE_RANK"] == "1"
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render_plans(dry_run(spec, 2), as_json=False))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "node-1: pytorch" in text and "WORLD_SIZE=4" in text and "torchrun" in text


@pytest.mark.parametrize("as_json", [False, True])
def test_the_command_prints_every_note_a_submit_prints(tmp_path, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from jobrunner.cli.main import app

    job = tmp_path / "job.yml"
    job.write_text(
        "command: echo hi\ncompute: azureml:gpu\nidentity: {type: managed}\nresources: {instance_count: 2}\n"
        "environment: azureml:AzureML-sklearn-1.5@latest\n"
    )
    result = CliRunner().invoke(app, ["submit", str(job), "--dry-run", *(["--json"] if as_json else [])])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    spec_notes = list(parse_job(job.read_text(), check_paths=False).notes)
    assert notes[: len(spec_notes)] == [f"note: {n}" for n in spec_notes]
    assert "note: `identity` is not used on a pool" in notes
    # Each node's note about the environment, on one line each.
    env_notes = [n for n in notes if "curated" in n]
    assert [n.endswith(f"on node-{i}; the command runs on the node") for i, n in enumerate(env_notes)] == [
        True
    ] * 2
    assert all("mcr.microsoft.com/azureml/curated/sklearn-1.5:latest" in n for n in env_notes)
    if as_json:
        assert len(json.loads(result.stdout)) == 2  # stdout stays the plans' JSON
