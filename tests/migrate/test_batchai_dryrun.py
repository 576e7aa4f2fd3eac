"""Every converted corpus job, shown by `jobrunner submit --dry-run --json` (the real command,
through typer's runner): the plan each node would run is the one the Batch AI toolkit asked for."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jobrunner.cli.main import app as jobrunner_app
from tests.corpus import BATCHAI as CORPUS
from tests.corpus import OWN_BATCHAI, needs_corpus
from trainstack.batchai.convert import migrate, write

RUN = "/var/lib/jobrunner/runs/dry-run/1"  # the dry run's attempt folder


@dataclass(frozen=True)
class Expected:
    distribution: str
    processes: list[list[str]]  # log names per node, in rank order
    preparation: bool = False
    env: dict[str, str] = field(default_factory=dict)  # on every process


# The project's own files, written from the schemas: they run on every clone.
OWN_EXPECTED = {
    "chainer-cluster-mount": Expected("mpi", [["node-0.mpirun"], []], env={"WORLD_SIZE": "2"}),
    "custom-toolkit-with-preparation": Expected("none", [["node-0"]], preparation=True),
    "horovod-four-nodes": Expected("mpi", [["node-0.mpirun"], [], [], []], env={"WORLD_SIZE": "4"}),
    "pytorch-two-nodes-nccl": Expected(
        "pytorch",
        [["node-0"], ["node-1"]],
        env={"AZ_BATCHAI_PYTORCH_INIT_METHOD": "env://", "WORLD_SIZE": "2"},
    ),
    "tensorflow-ps-workers": Expected(
        "tensorflow",
        [["node-0.worker-0", "node-0.ps-0"], ["node-1.worker-1"], ["node-2.worker-2"]],
        env={"WORLD_SIZE": "4"},
    ),
}
EXPECTED = {
    "caffe2-gpu-distributed": Expected("none", [["node-0"], ["node-1"]]),
    "chainer-gpu-distributed": Expected("mpi", [["node-0.mpirun"], []], env={"WORLD_SIZE": "2"}),
    "cntk-gpu-brainscript": Expected("none", [["node-0"]]),
    "cntk-gpu-python-distributed": Expected("mpi", [["node-0.mpirun"], []], preparation=True),
    "horovod-pytorch": Expected("mpi", [["node-0.mpirun"], []], preparation=True),
    "keras-gpu-tensorflow": Expected("none", [["node-0"]], preparation=True),
    "pytorch-gpu-distributed-gloo": Expected(
        "pytorch",
        [["node-0"], ["node-1"]],
        env={
            "AZ_BATCHAI_PYTORCH_BACKEND": "gloo",
            "AZ_BATCHAI_PYTORCH_INIT_METHOD": "env://",
            "WORLD_SIZE": "2",
        },
    ),
    "tensorflow-gpu-distributed": Expected(
        "tensorflow", [["node-0.worker-0", "node-0.ps-0"], ["node-1.worker-1"]], env={"WORLD_SIZE": "3"}
    ),
}


def job_path(name: str) -> Path:
    own = OWN_BATCHAI / "jobs" / f"{name}.json"
    return own if name in OWN_EXPECTED else CORPUS / "jobs" / f"{name}.json"


def dry_run(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    migration = migrate(job=job_path(name), target="pool")
    write(migration, tmp_path)
    result = CliRunner().invoke(jobrunner_app, ["submit", str(tmp_path / "job.yml"), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_every_own_job_has_an_expectation() -> None:
    assert sorted(OWN_EXPECTED) == sorted(p.stem for p in (OWN_BATCHAI / "jobs").glob("*.json"))


@needs_corpus
def test_every_corpus_job_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in (CORPUS / "jobs").glob("*.json"))


@pytest.mark.parametrize(
    "name", sorted(OWN_EXPECTED) + [pytest.param(n, marks=needs_corpus) for n in sorted(EXPECTED)]
)
def test_converted_job_dry_run_shows_the_toolkits_plan(name: str, tmp_path: Path) -> None:
    expected = {**EXPECTED, **OWN_EXPECTED}[name]
    nodes = dry_run(tmp_path, name)
    assert [n["distribution"] for n in nodes] == [expected.distribution] * len(expected.processes)
    assert [[p["log_name"] for p in n["processes"]] for n in nodes] == expected.processes
    assert [n["preparation"] is not None for n in nodes] == [expected.preparation] * len(nodes)
    for node in nodes:
        for process in node["processes"]:
            env = process["env"]
            assert {k: env[k] for k in expected.env} == expected.env
            # Batch AI's mount root is the attempt's `mounts` folder, where the agent links datastores.
            assert env["AZ_BATCHAI_JOB_MOUNT_ROOT"] == env["AZ_BATCHAI_MOUNT_ROOT"]
            assert env["AZ_BATCHAI_JOB_MOUNT_ROOT"].endswith("/mounts")
            assert "AZ_BATCHAI_SHARED_JOB_TEMP" in env and "AZ_BATCHAI_STDOUTERR_DIR" in env
            assert "${{" not in " ".join(process["argv"])  # every input and output was staged


@needs_corpus
def test_tensorflow_recipe_plans_two_workers_and_a_parameter_server(tmp_path: Path) -> None:
    nodes = dry_run(tmp_path, "tensorflow-gpu-distributed")
    processes = [p for n in nodes for p in n["processes"]]
    configs = [json.loads(p["env"]["TF_CONFIG"]) for p in processes]
    cluster = configs[0]["cluster"]
    assert len(cluster["worker"]) == 2 and len(cluster["ps"]) == 1
    assert all(c["cluster"] == cluster and c["environment"] == "cloud" for c in configs)
    assert [c["task"] for c in configs] == [
        {"type": "worker", "index": 0},
        {"type": "ps", "index": 0},
        {"type": "worker", "index": 1},
    ]
    for p in processes:
        assert p["env"]["AZ_BATCHAI_PS_HOSTS"] == ",".join(cluster["ps"])
        assert p["env"]["AZ_BATCHAI_WORKER_HOSTS"] == ",".join(cluster["worker"])
    assert [p["env"]["AZ_BATCHAI_TASK_INDEX"] for p in processes] == ["0", "0", "1"]
    # The parameter server runs its own arguments; the workers write the staged MODEL output.
    command = processes[0]["argv"][-1]
    script = f"{RUN}/inputs/scripts/tensorflow/mnist_replica.py"
    assert f'"ps "*) python {script} --job_name=ps' in command
    assert f"--checkpoint_dir={RUN}/outputs/MODEL" in command


@needs_corpus
def test_pytorch_gloo_runs_torchrun_on_two_nodes(tmp_path: Path) -> None:
    nodes = dry_run(tmp_path, "pytorch-gpu-distributed-gloo")
    for rank, node in enumerate(nodes):
        (process,) = node["processes"]
        argv = process["argv"]
        assert argv[0] == "torchrun"
        assert {"--nnodes=2", "--nproc-per-node=1", f"--node-rank={rank}", "--rdzv-backend=c10d"} <= set(argv)
        assert "--rdzv-endpoint=node-0:6105" in argv
        # The script takes its rank from $AZ_BATCHAI_TASK_INDEX: set from torchrun's RANK.
        prelude, command = argv[-1].split("\n")
        assert prelude == 'export AZ_BATCHAI_TASK_INDEX="${RANK}"'
        assert command.startswith(f"python {RUN}/inputs/scripts/pytorch/mnist_trainer.py")
        assert command.endswith("--rank $AZ_BATCHAI_TASK_INDEX")


@needs_corpus
def test_mpi_toolkits_run_mpirun_on_the_leader_over_both_nodes(tmp_path: Path) -> None:
    leader, other = dry_run(tmp_path, "horovod-pytorch")
    (process,) = leader["processes"]
    host_file = process["env"]["AZ_BATCHAI_MPI_HOST_FILE"]
    assert process["argv"][:5] == ["mpirun", "--hostfile", host_file, "-np", "2"]
    assert list(leader["files"].values()) == ["node-0 slots=1\nnode-1 slots=1\n"]
    assert other["waits_for_leader"] and other["processes"] == []
    assert "pip install horovod" in leader["preparation"]["argv"][-1]
