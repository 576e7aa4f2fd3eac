"""The local pool's doorbell: a ring wakes a waiting agent at once; a lost ring costs nothing;
an agent that polls the queue only every 30 s still starts a submitted job at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueMessage

from jobrunner.agent import Agent, AgentSettings
from jobrunner.client import Client
from jobrunner.doorbell import Doorbell, ring
from jobrunner.registry import PoolConfig, write_pool_config
from jobrunner.store import HOME_ENV, Store


class _WatchedStore(Store):
    """The real store, telling when a receive found the queue empty: the agent then waits on
    its doorbell (a ring sent before the wait begins stays in the socket until it looks)."""

    polled_empty: threading.Event

    def receive(self, queue: str, *, visibility_timeout_s: int) -> QueueMessage | None:
        message = super().receive(queue, visibility_timeout_s=visibility_timeout_s)
        if message is None:
            self.polled_empty.set()
        return message


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes: pytest's tmp_path can be longer.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bell-") as folder:
        yield Path(folder)


def test_a_ring_wakes_the_waiting_agent_and_a_silent_bell_times_out(short_dir: Path) -> None:
    bell = Doorbell.open(short_dir / "a0.sock")
    assert bell is not None
    stop = threading.Event()
    try:
        assert bell.wait(0.2, stop) is False
        threading.Timer(0.1, lambda: ring(short_dir)).start()
        started = time.monotonic()
        assert bell.wait(30, stop) is True
        assert time.monotonic() - started < 10  # woken by the ring, not by the 30 s timeout
        # several rings while busy are one wake-up, not a backlog of them
        assert ring(short_dir) == 1 and ring(short_dir) == 1
        assert bell.wait(1, stop) is True
        assert bell.wait(0.2, stop) is False
    finally:
        bell.close()
    assert not (short_dir / "a0.sock").exists()


def test_stop_ends_the_wait_and_stale_or_missing_bells_are_harmless(short_dir: Path) -> None:
    bell = Doorbell.open(short_dir / "a0.sock")
    assert bell is not None
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert bell.wait(30, stop) is False
    assert time.monotonic() - started < 10
    bell.close()
    (short_dir / "gone.sock").touch()  # a stopped agent's leftover: not a socket
    assert ring(short_dir) == 0
    assert ring(short_dir / "no-such-folder") == 0
    assert Doorbell.open(short_dir / ("x" * 200) / "a.sock") is None  # too long for a socket path


def test_a_submit_rings_the_idle_local_agent(
    azurite: str, short_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOME_ENV, str(short_dir))
    store = _WatchedStore.connect(azurite)
    store.polled_empty = threading.Event()
    write_pool_config(store, PoolConfig(name="bell", max_nodes=1))
    from jobrunner.localpool import doorbell_folder

    config = AgentSettings(
        pool="bell", name="bell-0", work_dir=tmp_path / "agent", idle_poll_min_s=30, idle_poll_max_s=30,
        board_poll_s=3600, doorbell=doorbell_folder("bell") / "bell-0.sock",
    )  # fmt: skip
    stop = threading.Event()
    agent = threading.Thread(target=Agent(store, config).serve, args=(stop,), daemon=True)
    agent.start()
    try:
        # the agent has polled the empty queue and waits 30 s for the next poll, or a ring
        assert store.polled_empty.wait(60)
        job = tmp_path / "job.yml"
        job.write_text("command: echo rung\n")
        client = Client(store, pool="bell")
        run = client.submit(job)
        deadline = time.monotonic() + 15  # half the agent's poll interval
        while not client.status(run.id).state.terminal and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.status(run.id).state.value == "succeeded"
    finally:
        stop.set()
        agent.join(30)
