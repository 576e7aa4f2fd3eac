"""The DDP example trained for real: two gang members on 127.0.0.1, each with its own paths,
planned by `plan_launch` and run by `run_plan` at the same time, meeting through torchrun's
c10d rendezvous."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobrunner.spec.job import load_job

from .planning import LocalGang

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ddp"


@pytest.mark.slow
def test_two_nodes_train_the_ddp_example(tmp_path: Path) -> None:
    spec = load_job(EXAMPLE / "job.yml", {"inputs.steps": "12"})
    assert spec.distribution_type == "pytorch" and spec.instance_count == 2
    gang = LocalGang(spec, EXAMPLE, tmp_path)
    results = gang.run()
    output = gang.output()
    assert results[0].succeeded and results[1].succeeded, output
    # Only global rank 0 writes; c10d rendezvous decides which node that rank lands on.
    (written,) = list(tmp_path.glob("node*/outputs/model/metrics.json"))
    metrics = json.loads(written.read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 12 and metrics["backend"] == "gloo"
    assert metrics["final_loss"] < metrics["first_loss"]
    assert (written.parent / "model.pt").stat().st_size > 0
    assert {name for name, _, line in gang.lines if "step 12/12" in line} == {"node-0", "node-1"}
    assert "world_size=2" in output
