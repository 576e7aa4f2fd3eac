"""Who is in a pool: its config (how many nodes it can ever have) and its agents' heartbeats.

Blobs in the `pools` container:

- `<pool>/config.json`: `PoolConfig`, written by `jobrunner local-pool start` (its node
  count) or by the pool's deployment (the scale set's maximum). Submit reads it to refuse a
  job larger than the pool can ever be, or a registered environment its nodes cannot resolve.
- `<pool>/agents/<name>.json`: `AgentRecord`, rewritten by each agent every heartbeat:
  name, pid, address, idle/busy, current job, last heartbeat. An agent whose heartbeat is
  older than the stale limit counts as gone (gang members, `jobrunner pool status`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from jobrunner.errors import NotFoundError
from jobrunner.status import utc_now
from jobrunner.store import POOLS, Store


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


class AgentRecord(_Frozen):
    name: str
    pool: str
    pid: int
    address: str
    state: Literal["idle", "busy", "stopped"] = "idle"
    current_job: str | None = None
    last_heartbeat: str
    started_at: str

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds since the last heartbeat."""
        beat = datetime.fromisoformat(self.last_heartbeat.replace("Z", "+00:00"))
        return ((now or datetime.now(UTC)) - beat).total_seconds()


def write_pool_config(store: Store, config: PoolConfig) -> None:
    store.put(POOLS, f"{config.name}/config.json", config.model_dump_json().encode())


def read_pool_config(store: Store, pool: str) -> PoolConfig | None:
    """The pool's config, or None when nothing recorded how large it can be."""
    try:
        data, _ = store.get(POOLS, f"{pool}/config.json")
    except NotFoundError:
        return None
    return PoolConfig.model_validate_json(data)


def beat(store: Store, record: AgentRecord) -> AgentRecord:
    """Write the agent's record with a fresh heartbeat; returns what was written."""
    fresh = record.model_copy(update={"last_heartbeat": utc_now(), "pid": os.getpid()})
    store.put(POOLS, f"{record.pool}/agents/{record.name}.json", fresh.model_dump_json().encode())
    return fresh


def list_agents(store: Store, pool: str) -> list[AgentRecord]:
    """Every agent that ever beat in this pool (stale ones included), by name."""
    out = []
    for blob in store.list(POOLS, f"{pool}/agents/"):
        try:
            data, _ = store.get(POOLS, blob.name)
        except NotFoundError:
            continue
        out.append(AgentRecord.model_validate_json(data))
    return sorted(out, key=lambda a: a.name)


def alive_agents(store: Store, pool: str, stale_after_s: float) -> dict[str, AgentRecord]:
    """Agents whose heartbeat is fresh and that have not said they stopped."""
    now = datetime.now(UTC)
    return {
        a.name: a for a in list_agents(store, pool) if a.state != "stopped" and a.age_s(now) <= stale_after_s
    }
