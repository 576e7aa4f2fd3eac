"""A job message survives store trouble in the middle of handling it: when the gang board
cannot be written (busy, or the store failing), the message comes back to the queue rather
than being deleted with the job posted nowhere (found by the scale benchmark: 4 of 300 jobs
lost on 32 agents)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO, Any

import pytest

from jobrunner.agent import Agent, AgentSettings
from jobrunner.client import Client
from jobrunner.errors import ConflictError, TrainstackError
from jobrunner.registry import PoolConfig, write_pool_config
from jobrunner.store import POOLS, Store, queue_name


class _BoardRefused(Store):
    """The real store (`_BoardRefused.connect`), except that the gang board cannot be written."""

    def put(self, container: str, name: str, data: bytes | IO[bytes], **kw: Any) -> str:
        if container == POOLS and name.endswith("board.json"):
            raise ConflictError("the gang board is changing too fast to update")
        return super().put(container, name, data, **kw)


def test_a_gang_that_cannot_be_posted_keeps_its_message(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    pool = "trouble"
    write_pool_config(store, PoolConfig(name=pool, max_nodes=2))
    job = tmp_path / "job.yml"
    job.write_text("command: 'true'\nresources:\n  instance_count: 2\n")
    run = Client(store, pool=pool).submit(job)
    agent = Agent(
        _BoardRefused.connect(azurite),
        AgentSettings(pool=pool, name="t-0", work_dir=tmp_path / "agent", visibility_timeout_s=1),
    )
    agent._next_board = float("inf")  # straight to the queue
    with pytest.raises(TrainstackError):
        agent.step(threading.Event())
    # held for its visibility timeout, then back for any agent; the run is still queued
    threading.Event().wait(1.5)
    message = store.receive(queue_name(pool), visibility_timeout_s=30)
    assert message is not None and run.id in bytes(message.content).decode()
    assert Client(store, pool=pool).status(run.id).state.value == "queued"
