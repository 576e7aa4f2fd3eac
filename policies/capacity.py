"""The GPU capacity a stack declares: for each Azure ML cluster and each self-managed pool,
its VM size, whether it runs on evictable (Spot / low-priority) capacity, and its node range.

A cluster states its range in `scaleSettings`. A pool (a VM scale set) states it in the
autoscale setting that targets it; without one, the scale set's fixed `sku.capacity` is both
the minimum and the maximum. Cost and the scale-from-zero and budget rules all read this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.model import Resource
from policies.tokens import AUTOSCALE, ML_COMPUTE, SCALE_SET


@dataclass(frozen=True)
class Capacity:
    """One cluster or pool: `kind` is "cluster" or "pool"; `evictable` = Spot/low priority."""

    resource: Resource
    kind: str
    vm_size: str
    evictable: bool
    min_nodes: int
    max_nodes: int


def _count(value: Any, default: int) -> int:
    """Node counts arrive as ints from clusters and as strings from autoscale settings."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _cluster(r: Resource) -> Capacity | None:
    if r.get("properties.computeType") != "AmlCompute":
        return None
    scale = r.get("properties.properties.scaleSettings") or {}
    max_nodes = _count(scale.get("maxNodeCount"), 0)
    return Capacity(
        resource=r,
        kind="cluster",
        vm_size=str(r.get("properties.properties.vmSize") or ""),
        evictable=r.get("properties.properties.vmPriority") == "LowPriority",
        min_nodes=_count(scale.get("minNodeCount"), 0),
        max_nodes=max_nodes,
    )


def _targets(setting: Resource, pool: Resource) -> bool:
    """Whether an autoscale setting scales `pool`: by its target URI when that is known, by
    sharing the pool's parent component otherwise (the URI is an output under a plan)."""
    uri = setting.get("targetResourceUri")
    names = {pool.name, str(pool.get("vmScaleSetName") or pool.name)}
    if isinstance(uri, str) and "/" in uri:
        return uri.rstrip("/").rsplit("/", 1)[-1] in names
    return setting.parent is not None and setting.parent == pool.parent


def _autoscale_range(setting: Resource) -> tuple[int, int] | None:
    profiles = setting.get("profiles") or []
    caps = [c for p in profiles if isinstance(p, Mapping) and isinstance(c := p.get("capacity"), Mapping)]
    if not caps:
        return None
    return min(_count(c.get("minimum"), 0) for c in caps), max(_count(c.get("maximum"), 0) for c in caps)


def _pool(r: Resource, settings: Sequence[Resource]) -> Capacity:
    fixed = _count(r.get("sku.capacity"), 0)
    ranges = [rng for s in settings if _targets(s, r) and (rng := _autoscale_range(s)) is not None]
    low, high = ranges[0] if ranges else (fixed, fixed)
    return Capacity(
        resource=r,
        kind="pool",
        vm_size=str(r.get("sku.name") or ""),
        evictable=r.get("virtualMachineProfile.priority") in ("Spot", "Low"),
        min_nodes=low,
        max_nodes=high,
    )


def capacities(resources: Sequence[Resource]) -> list[Capacity]:
    """Every AmlCompute cluster and VM scale set in `resources`, in declaration order."""
    settings = [r for r in resources if r.type == AUTOSCALE]
    out: list[Capacity] = []
    for r in resources:
        if r.type == ML_COMPUTE and (c := _cluster(r)) is not None:
            out.append(c)
        elif r.type == SCALE_SET:
            out.append(_pool(r, settings))
    return out
