"""Real agents (`jobrunner.node.agent.Agent`) serving a pool on threads of the test process, with
fast timings: for tests that reach into one agent's store or settings. Tests of whole agent
processes use `tests.faults.pool.FaultPool` or the local pool."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobrunner.api import NodeFacts
from jobrunner.node.agent import Agent, AgentSettings
from jobrunner.store.client import Store
from jobrunner.store.pool_config import PoolConfig, write_pool_config
from jobrunner.store.status import find_run, read_status

FAST = {
    "heartbeat_s": 0.3,
    "stale_after_s": 5.0,
    "status_poll_s": 0.3,
    "sync_s": 1.0,
    "terminate_grace_s": 3.0,
}


def fast_settings(pool: str, name: str, work_dir: Path, **fields: Any) -> AgentSettings:
    return AgentSettings(pool=pool, name=name, work_dir=work_dir, **fields).with_timings(**FAST)


@contextlib.contextmanager
def serving(
    store: Store,
    pool: str,
    tmp_path: Path,
    count: int = 1,
    *,
    stores: list[Store] | None = None,
    **fields: Any,
) -> Iterator[list[Agent]]:
    """`count` agents named `<pool>-<i>` serving `pool` until the block ends (`stores[i]`, when
    given, is agent i's store: a wrapped one that injects trouble)."""
    write_pool_config(store, PoolConfig(name=pool, max_nodes=count))
    agents = [
        Agent(
            (stores or [store] * count)[i],
            fast_settings(pool, f"{pool}-{i}", tmp_path / f"agent-{i}", **fields),
        )
        for i in range(count)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=a.serve, args=(stop,), daemon=True) for a in agents]
    for t in threads:
        t.start()
    try:
        yield agents
    finally:
        stop.set()
        for t in threads:
            t.join(60)


def run_to_end(
    store: Store,
    settings: AgentSettings,
    run_id: str,
    *,
    facts: NodeFacts | None = None,
    timeout: float = 120,
) -> None:
    """One agent with `settings` (and fast protocol timings) serves its pool until `run_id` ended."""
    fast = settings.with_timings(heartbeat_s=FAST["heartbeat_s"], stale_after_s=FAST["stale_after_s"])
    agent = Agent(store, fast, facts=facts)
    stop = threading.Event()
    thread = threading.Thread(target=agent.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        ref = find_run(store, run_id)
        while not read_status(store, ref)[0].state.terminal:
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError(f"{run_id} did not end within {timeout} s")
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(60)
