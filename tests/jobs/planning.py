"""Building gangs, node facts and paths for planning tests, and running a whole gang of
plans on this machine (every member at 127.0.0.1, each with its own folders)."""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

from jobrunner.api import Gang, GangMember, NodeFacts, NodePaths
from jobrunner.node.launch import ByLine, LaunchResult, run_plan
from jobrunner.plan.launch_plan import plan_launch
from jobrunner.spec.job import JobSpec


def gang(size: int, rank: int, *, addresses: list[str] | None = None, ports: tuple[int, ...] = ()) -> Gang:
    addresses = addresses or [f"10.0.0.{i + 4}" for i in range(size)]
    members = tuple(GangMember(f"node{i}", addresses[i], i) for i in range(size))
    return Gang("job-1", 2, members, rank, master_port=6105, ports=ports)


def node(rank: int, *, gpus: int = 0, docker: bool = False, address: str | None = None) -> NodeFacts:
    return NodeFacts(
        f"node{rank}", address or f"10.0.0.{rank + 4}", gpus=gpus, cpus=8, container_runtime=docker
    )


def paths(
    rank: int = 0, *, inputs: dict[str, str] | None = None, outputs: dict[str, str] | None = None
) -> NodePaths:
    root = f"/runs/job-1/2/node{rank}"
    return NodePaths(
        root=root,
        code=f"{root}/code",
        inputs=inputs or {},
        outputs=outputs or {},
        logs=f"{root}/logs",
        temp=f"{root}/tmp",
    )


def free_ports(count: int) -> tuple[int, ...]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return tuple(int(s.getsockname()[1]) for s in sockets)
    finally:
        for s in sockets:
            s.close()


class LocalGang:
    """Plans and runs every node of `spec`'s gang on this machine, at the same time."""

    def __init__(self, spec: JobSpec, code: Path, tmp_path: Path) -> None:
        self.spec, self.code, self.tmp_path = spec, code, tmp_path
        self.lines: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def paths(self, rank: int) -> NodePaths:
        root = self.tmp_path / f"node{rank}"
        return NodePaths(
            root=str(root),
            code=str(root / "code"),
            outputs={name: str(root / "outputs" / name) for name in self.spec.outputs},
            logs=str(root / "code" / "logs"),
            temp=str(root / "tmp"),
        )

    def sink(self, log_name: str, stream: str, line: str) -> None:
        with self._lock:
            self.lines.append((log_name, stream, line))

    def output(self) -> str:
        return "\n".join(f"{n} {s}: {line}" for n, s, line in self.lines)

    def run(self, *, timeout: float = 120) -> dict[int, LaunchResult]:
        size = self.spec.instance_count
        master, *ports = free_ports(1 + 4)
        members = tuple(GangMember(f"local-{i}", "127.0.0.1", i) for i in range(size))
        results: dict[int, LaunchResult] = {}
        sink = ByLine(self.sink)  # one splitter per (process, stream): the log names differ by node

        def one(rank: int) -> None:
            paths = self.paths(rank)
            shutil.copytree(self.code, paths.code)
            gang = Gang("local-test", 1, members, rank, master_port=master, ports=tuple(ports))
            plan = plan_launch(self.spec, NodeFacts(f"local-{rank}", "127.0.0.1", cpus=2), gang, paths)
            error_file = Path(paths.root) / "error.json"
            results[rank] = run_plan(plan, sink, timeout=timeout, grace_s=5, error_file=error_file)

        threads = [threading.Thread(target=one, args=(r,)) for r in range(size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results
