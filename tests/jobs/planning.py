"""Building gangs, node facts and paths for planning tests."""

from __future__ import annotations

from jobrunner.api import Gang, GangMember, NodeFacts, NodePaths


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
