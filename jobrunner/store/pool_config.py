"""What a pool can be: `<pool>/config.json` in the `pools` container (`PoolConfig`).

Written by `jobrunner local-pool start` (its node count) or by the pool's deployment (the
scale set's maximum). Submit reads it to refuse a job larger than the pool can ever be, or a
registered environment its nodes cannot resolve. Who is in the pool now is the scheduler's
(`jobrunner.scheduler.report.read_nodes`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from jobrunner.errors import NotFoundError
from jobrunner.store.client import POOLS, Store


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PoolConfig(_Frozen):
    name: str
    max_nodes: int
    kind: str = "local"  # "local" (jobrunner local-pool) or "vmss" (a GpuPool stack)
    # Whether its nodes run jobs in containers (None: not said), and its environments map:
    # submit refuses a registered environment that would not resolve there.
    containers: bool | None = None
    environments: dict[str, str] = {}


def write_pool_config(store: Store, config: PoolConfig) -> None:
    store.put(POOLS, f"{config.name}/config.json", config.model_dump_json().encode())


def read_pool_config(store: Store, pool: str) -> PoolConfig | None:
    """The pool's config, or None when nothing recorded how large it can be."""
    try:
        data, _ = store.get(POOLS, f"{pool}/config.json")
    except NotFoundError:
        return None
    return PoolConfig.model_validate_json(data)
