"""Batch AI's layout on a node: mount-root links to the staged datastores, log files under
Batch AI's names, and `${{name}}` in output paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.api import NodePaths
from jobrunner.errors import JobSpecError
from jobrunner.node.batchai_runtime import (
    BATCHAI_LOG_FILE,
    BatchAiLogFiles,
    StreamIndex,
    batchai_log_id,
    batchai_log_views,
    link_mounts,
    mount_links,
)
from jobrunner.node.logship import LogReader, LogShipper
from jobrunner.node.staging import output_path
from jobrunner.spec.job import parse_job
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import RunRef

JOB = """
command: python ${{inputs.scripts}}/train.py
inputs:
  scripts: {path: "azureml://datastores/scripts/paths/"}
  images: {path: "azureml://datastores/data/paths/mnist/images"}
  sub: {path: "azureml://datastores/scripts/paths/tools"}
  url: {path: "https://example.com/a.csv", mode: direct}
  epochs: 3
outputs:
  model: {path: "azureml://datastores/logs/paths/${{name}}/Models"}
  kept:
"""


def node_paths(root: Path) -> NodePaths:
    return NodePaths(
        root=str(root),
        code=str(root / "code"),
        inputs={n: str(root / "inputs" / n) for n in ("scripts", "images", "sub")}
        | {"url": "https://example.com/a.csv"},
        outputs={n: str(root / "outputs" / n) for n in ("model", "kept")},
        logs=str(root / "code" / "logs"),
        temp=str(root / "tmp"),
        mounts=str(root / "mounts"),
    )


def test_mount_links_name_each_staged_datastore_path_shortest_first(tmp_path: Path) -> None:
    spec = parse_job(JOB, source="job.yml", check_paths=False)
    links = mount_links(spec, node_paths(tmp_path), "run-1")
    m, s = tmp_path / "mounts", tmp_path
    assert links == [
        (f"{m}/scripts", f"{s}/inputs/scripts"),
        (f"{m}/scripts/tools", f"{s}/inputs/sub"),
        (f"{m}/data/mnist/images", f"{s}/inputs/images"),
        (f"{m}/logs/run-1/Models", f"{s}/outputs/model"),
    ]


def test_link_mounts_makes_the_links_and_skips_what_a_shorter_one_covers(tmp_path: Path) -> None:
    spec = parse_job(JOB, source="job.yml", check_paths=False)
    paths = node_paths(tmp_path)
    for staged in [*paths.inputs.values(), *paths.outputs.values()]:
        if not staged.startswith("https"):
            Path(staged).mkdir(parents=True)
    (tmp_path / "inputs" / "scripts" / "tools").mkdir()  # staged with the whole datastore
    (tmp_path / "inputs" / "scripts" / "train.py").write_text("print(1)\n")
    made = link_mounts(spec, paths, "run-1")
    mounts = tmp_path / "mounts"
    assert made == [
        str(mounts / "scripts"),
        str(mounts / "data/mnist/images"),
        str(mounts / "logs/run-1/Models"),
    ]
    assert (mounts / "scripts" / "train.py").read_text() == "print(1)\n"
    (mounts / "logs" / "run-1" / "Models" / "w.bin").write_text("x")
    assert (tmp_path / "outputs" / "model" / "w.bin").read_text() == "x"
    assert (tmp_path / "tmp" / "shared").is_dir()  # $AZ_BATCHAI_SHARED_JOB_TEMP
    assert link_mounts(spec, paths, "run-1") == []  # a second call changes nothing


@pytest.mark.parametrize(
    ("log_name", "expected"),
    [
        ("node-0", "wk-0"),
        ("node-3", "wk-3"),
        ("node-1.worker-2", "wk-2"),
        ("node-0.ps-1", "ps-1"),
        ("node-0.mpirun", "wk-0"),
        ("node-1.preparation", None),
        ("agent.node-1", None),
    ],
)
def test_batchai_log_ids_follow_the_task(log_name: str, expected: str | None) -> None:
    assert batchai_log_id(log_name) == expected


def test_log_files_split_stdout_and_stderr_per_task(tmp_path: Path) -> None:
    with BatchAiLogFiles(tmp_path / "logs") as files:
        files("node-0.worker-0", "stdout", b"step 1\nstep")
        files("node-0.ps-0", "stderr", b"listening\n")
        files("node-0.worker-0", "stderr", b"warning\n")
        files("node-0.worker-0", "stdout", b" 2\n")
        files("node-0.worker-0", "stdout", b"")  # the end of the stream
        files("node-0.preparation", "stdout", b"pip install\n")
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["stderr-ps-0.txt", "stderr-wk-0.txt", "stdout-wk-0.txt"]
    assert (tmp_path / "logs" / "stdout-wk-0.txt").read_bytes() == b"step 1\nstep 2\n"
    assert all(BATCHAI_LOG_FILE.match(name) for name in names)
    assert not BATCHAI_LOG_FILE.match("train.log")


def test_output_paths_take_the_run_id_output_name_and_default_datastore() -> None:
    path = "azureml://datastores/${{default_datastore}}/paths/${{name}}/${{ output_name }}"
    assert output_path(path, "run-7", "model") == "azureml://datastores/workspaceblobstore/paths/run-7/model"


def test_output_path_with_an_expression_a_pool_cannot_fill_is_refused() -> None:
    job = "command: x\noutputs:\n  m: {path: 'azureml://datastores/d/paths/${{inputs.x}}'}\n"
    with pytest.raises(JobSpecError, match=r"outputs\.m\.path: `\$\{\{inputs\.x\}\}` cannot be filled in"):
        parse_job(job, source="job.yml")


def test_batchai_files_in_the_store_are_a_view_of_the_merged_logs(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    ref = RunRef(experiment="view", id="run-1")
    attempts = {
        1: [
            ("node-0", "stdout", b"step 1\nst"),
            ("node-0", "stdout", b"ep 2\n"),
            ("node-0", "stderr", b"warning\n"),
            ("node-0.preparation", "stdout", b"pip install\n"),  # no Batch AI name
            ("node-0", "stdout", b"step 3\n"),
            ("node-1", "stdout", b"other node\n"),
        ],
        2: [("node-0", "stdout", b"resumed\n"), ("node-0", "stderr", b"Traceback\n")],
    }
    for attempt, chunks in attempts.items():
        spool = tmp_path / f"spool-{attempt}"
        shipper = LogShipper(store, ref.logs_prefix(attempt), spool, interval_s=3600)
        index = StreamIndex(shipper, spool, ref.logs_prefix(attempt))
        for log_name, stream, data in chunks:
            index(log_name, stream, data)
            shipper.write_chunk(log_name, data)
        assert shipper.close()
    assert batchai_log_views(store, ref) == {
        "stdout-wk-0.txt": b"step 1\nstep 2\nstep 3\nresumed\n",
        "stderr-wk-0.txt": b"warning\nTraceback\n",
        "stdout-wk-1.txt": b"other node\n",
    }
    # the merged logs are what was sent; the index is a line per switch of stream
    assert store.get(RUNS, ref.logs_prefix(1) + "node-0.streams")[0] == b"stdout 0\nstderr 14\nstdout 22\n"
    assert store.get(RUNS, ref.logs_prefix(1) + "node-0.txt")[0] == b"step 1\nstep 2\nwarning\nstep 3\n"
    assert LogReader(store, ref.logs_prefix(1)).streams() == ["node-0", "node-0.preparation", "node-1"]
