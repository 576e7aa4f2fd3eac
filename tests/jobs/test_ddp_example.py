"""The DDP example trained for real: two gang members on 127.0.0.1, each with its own paths,
planned by `plan_launch` and run by `run_plan` at the same time, meeting through torchrun's
c10d rendezvous."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path

import pytest

from jobrunner.api import Gang, GangMember, NodeFacts, NodePaths
from jobrunner.launch import LaunchResult, run_plan
from jobrunner.plan import plan_launch
from jobrunner.spec import load_job

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ddp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_train_the_ddp_example(tmp_path: Path) -> None:
    spec = load_job(EXAMPLE / "job.yml", {"inputs.steps": "12"})
    assert spec.distribution_type == "pytorch" and spec.instance_count == 2
    members = (GangMember("local-0", "127.0.0.1", 0), GangMember("local-1", "127.0.0.1", 1))
    port = free_port()
    results: dict[int, LaunchResult] = {}
    lines: list[tuple[str, str]] = []
    lock = threading.Lock()

    def sink(log_name: str, stream: str, line: str) -> None:
        with lock:
            lines.append((log_name, line))

    def node(rank: int) -> None:
        root = tmp_path / f"node{rank}"
        shutil.copytree(EXAMPLE, root / "code")
        paths = NodePaths(
            root=str(root), code=str(root / "code"), outputs={"model": str(root / "outputs" / "model")},
            logs=str(root / "code" / "logs"), temp=str(root / "tmp"),
        )  # fmt: skip
        gang = Gang("ddp-test", 1, members, rank, master_port=port)
        plan = plan_launch(spec, NodeFacts(f"local-{rank}", "127.0.0.1", cpus=2), gang, paths)
        results[rank] = run_plan(plan, sink, timeout=120, grace_s=5, error_file=root / "error.json")

    threads = [threading.Thread(target=node, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    output = "\n".join(line for _, line in lines)
    assert results[0].succeeded and results[1].succeeded, output
    # Only global rank 0 writes; c10d rendezvous decides which node that rank lands on.
    (written,) = list(tmp_path.glob("node*/outputs/model/metrics.json"))
    metrics = json.loads(written.read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 12 and metrics["backend"] == "gloo"
    assert metrics["final_loss"] < metrics["first_loss"]
    assert (written.parent / "model.pt").stat().st_size > 0
    assert {name for name, line in lines if "step 12/12" in line} == {"node-0", "node-1"}
    assert "world_size=2" in output
