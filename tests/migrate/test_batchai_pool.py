"""Converted Batch AI jobs and the TensorFlow and MPI examples, run for real on a 2-agent local
pool (real `jobrunner` subprocesses, real Azurite): a Batch AI script finds its mounts, input
and output folders and temp folders where Batch AI put them, and its logs under Batch AI's names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.runner.conftest import REPO
from trainstack.batchai.convert import migrate, write

pytestmark = pytest.mark.slow

Cli = Any  # tests.runner.conftest.Cli
APP = Path(__file__).parent / "batchai_app"
WORDS = {"a.txt": "the cat sat\n", "b.txt": "the dog sat down\n", "c.txt": "the end\n"}

WORDCOUNT_JOB = {
    "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json",
    "properties": {
        "nodeCount": 2,
        "pyTorchSettings": {
            "pythonScriptFilePath": "$AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/wordcount.py",
            "commandLineArgs": "--data $AZ_BATCHAI_INPUT_CORPUS --out $AZ_BATCHAI_OUTPUT_COUNTS",
            "communicationBackend": "gloo",
        },
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
        "mountVolumes": {
            "azureFileShares": [
                {
                    "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/logs",
                    "relativeMountPath": "logs",
                },
                {
                    "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/scripts",
                    "relativeMountPath": "scripts",
                },
            ],
            "azureBlobFileSystems": [
                {
                    "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
                    "containerName": "data",
                    "relativeMountPath": "data",
                }
            ],
        },
        "inputDirectories": [{"id": "CORPUS", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/data/corpus"}],
        "outputDirectories": [
            {"id": "COUNTS", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs", "pathSuffix": "counts"}
        ],
    },
}


def run_to_the_end(cli: Cli, job: Path) -> str:
    done = cli.run("submit", str(job), "--wait", timeout=180)
    run_id = done.stdout.splitlines()[0].strip() if done.stdout else ""
    logs = cli.run("logs", run_id).stdout if run_id else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
    return run_id


def test_converted_job_with_input_and_output_directories_runs_on_the_pool(
    pool_env: Cli, tmp_path: Path
) -> None:
    source = tmp_path / "wordcount.json"
    source.write_text(json.dumps(WORDCOUNT_JOB))
    write(migrate(job=source, target="pool"), tmp_path / "converted")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in WORDS.items():
        (corpus / name).write_text(text)
    pool_env.run("data", "upload", str(APP), "--datastore", "scripts", check=True)
    pool_env.run("data", "upload", str(corpus), "--datastore", "data", "--path", "corpus", check=True)

    run_id = run_to_the_end(pool_env, tmp_path / "converted" / "job.yml")

    # The output went to the `logs` datastore under the run's own folder (Batch AI's generated
    # segment), so a rerun cannot overwrite it.
    saved = tmp_path / "saved"
    pool_env.run(
        "data", "download", str(saved), "--datastore", "logs", "--path", f"{run_id}/counts", check=True
    )
    totals: dict[str, int] = {}
    for part in sorted(saved.glob("counts-*.json")):
        for word, n in json.loads(part.read_text()).items():
            totals[word] = totals.get(word, 0) + n
    assert sorted(p.name for p in saved.iterdir()) == ["counts-0.json", "counts-1.json"]
    assert totals == {"the": 3, "cat": 1, "sat": 2, "dog": 1, "down": 1, "end": 1}

    # Each node's process output, also under Batch AI's names, kept with the run's logs.
    outputs = tmp_path / "outputs"
    pool_env.run("outputs", run_id, "--download", str(outputs), check=True)
    # torchrun's rendezvous, not the node, picks each process's rank: one rank per node's file.
    stdout = [(outputs / "logs" / f"stdout-wk-{node}.txt").read_text() for node in (0, 1)]
    stderr = [(outputs / "logs" / f"stderr-wk-{node}.txt").read_text() for node in (0, 1)]
    assert sorted(text.split(" counted")[0] for text in stdout) == ["rank 0", "rank 1"]
    # stderr holds torchrun's own warnings too
    done = [[line for line in text.splitlines() if line.endswith(" done")] for text in stderr]
    assert sorted(lines[0] for lines in done if len(lines) == 1) == ["rank 0 done", "rank 1 done"]
    merged = pool_env.run("logs", run_id, check=True).stdout
    assert "rank 0 counted" in merged and "rank 1 done" in merged


def test_tensorflow_example_runs_two_workers_and_a_parameter_server(pool_env: Cli) -> None:
    run_id = run_to_the_end(pool_env, REPO / "examples" / "tensorflow" / "job.yml")
    text = pool_env.run("logs", run_id, check=True).stdout
    tasks = sorted(
        line.split("| task ")[1].split(" at ")[0] for line in text.splitlines() if "| task " in line
    )
    assert tasks == ["ps:0", "worker:0", "worker:1"]
    clusters = {line.split("| cluster ")[1] for line in text.splitlines() if "| cluster " in line}
    assert len(clusters) == 1  # every task saw the same cluster, each at its own free port
    cluster = json.loads(clusters.pop())
    assert len(set(cluster["worker"] + cluster["ps"])) == 3


@pytest.mark.needs_tool("mpirun", "openmpi-bin")
def test_mpi_example_runs_its_ranks_from_the_leader(pool_env: Cli, tmp_path: Path) -> None:
    run_id = run_to_the_end(pool_env, REPO / "examples" / "mpi" / "job.yml")
    pool_env.run("outputs", run_id, "--download", str(tmp_path), check=True)
    ranks = sorted(json.loads(p.read_text())["rank"] for p in (tmp_path / "ranks").glob("rank-*.json"))
    assert ranks == [0, 1, 2, 3]
    assert "hello from rank 3 of 4" in (tmp_path / "logs" / "stdout-wk-0.txt").read_text()
