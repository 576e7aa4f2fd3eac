"""The TensorFlow-style, MPI and hello examples, planned and run for real on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobrunner.spec.job import load_job

from .planning import LocalGang

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_example_loads_and_is_in_the_readme() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    jobs = sorted(EXAMPLES.glob("*/job.yml"))
    assert {j.parent.name for j in jobs} >= {"ddp", "tensorflow", "mpi", "hello"}
    for job in jobs:
        load_job(job)
        assert f"`{job.parent.name}/`" in readme, f"examples/README.md does not describe {job.parent.name}"


def test_hello_writes_its_output_file(tmp_path: Path) -> None:
    spec = load_job(EXAMPLES / "hello" / "job.yml")
    gang = LocalGang(spec, EXAMPLES / "hello", tmp_path)
    (result,) = gang.run().values()
    assert result.succeeded, gang.output()
    written = (tmp_path / "node0" / "code" / "outputs" / "x.txt").read_text()
    assert written == "hello from trainstack on node 0\n"


def test_tensorflow_tasks_get_a_consistent_tf_config(tmp_path: Path) -> None:
    spec = load_job(EXAMPLES / "tensorflow" / "job.yml")
    gang = LocalGang(spec, EXAMPLES / "tensorflow", tmp_path)
    results = gang.run()
    assert all(r.succeeded for r in results.values()), gang.output()
    assert sorted(name for r in results.values() for name in r.exit_codes) == [
        "node-0.ps-0",
        "node-0.worker-0",
        "node-1.worker-1",
    ]
    clusters = {line for _, _, line in gang.lines if line.startswith("cluster ")}
    assert len(clusters) == 1  # every task saw the same cluster
    cluster = json.loads(clusters.pop().removeprefix("cluster "))
    assert len(cluster["worker"]) == 2 and len(cluster["ps"]) == 1
    assert len(set(cluster["worker"] + cluster["ps"])) == 3  # distinct ports on one address


@pytest.mark.needs_tool("mpirun", "openmpi-bin")
@pytest.mark.slow
def test_mpi_ranks_are_started_by_the_leader(tmp_path: Path) -> None:
    spec = load_job(EXAMPLES / "mpi" / "job.yml")
    gang = LocalGang(spec, EXAMPLES / "mpi", tmp_path)
    results = gang.run()
    assert results[0].succeeded, gang.output()
    assert results[1].processes == ()  # the other node starts nothing itself
    ranks = sorted(
        json.loads(p.read_text())["rank"] for p in tmp_path.glob("node0/outputs/ranks/rank-*.json")
    )
    assert ranks == [0, 1, 2, 3]
    assert (tmp_path / "node0" / "tmp" / "mpi-hostfile").read_text() == "127.0.0.1 slots=4\n"
