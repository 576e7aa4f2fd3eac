"""The local pool's doorbell: a ring wakes a waiting agent at once; a lost ring costs nothing;
an agent that polls the queue only every 30 s still starts a submitted job at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from jobrunner.client import Client
from jobrunner.node.agent import Agent, AgentSettings
from jobrunner.node.doorbell import ASSIGNED, Doorbell, ring
from jobrunner.store.client import HOME_ENV, Store
from jobrunner.store.pool_config import PoolConfig, write_pool_config
from tests.faults.pool import wait_for


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


def test_an_assignment_rings_only_the_nodes_given_it(short_dir: Path) -> None:
    bells = {name: Doorbell.open(short_dir / f"{name}.sock") for name in ("n0", "n1", "n2")}
    stop = threading.Event()
    try:
        assert ring(short_dir, ASSIGNED, names=("n1", "gone")) == 1
        assert [n for n, b in bells.items() if b is not None and b.wait(0.2, stop)] == ["n1"]
        assert bells["n1"] is not None and bells["n1"].rung == {ASSIGNED}
    finally:
        for bell in bells.values():
            if bell is not None:
                bell.close()


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
    """An agent that beats (and so sees new work) and leads only every 30 s starts a submitted
    job at once: the submit rings it, it takes the submission in as the pool's leader, assigns
    it, and the assignment rings the agent it went to, which reads its blob now."""
    monkeypatch.setenv(HOME_ENV, str(short_dir))
    store = Store.connect(azurite)
    write_pool_config(store, PoolConfig(name="bell", max_nodes=1))
    from jobrunner.local.pool import doorbell_folder

    bell = doorbell_folder("bell") / "bell-0.sock"
    config = AgentSettings(pool="bell", name="bell-0", work_dir=tmp_path / "agent", doorbell=bell)
    config = config.with_timings(heartbeat_s=30)
    # and the leader passes only every 30 s: only the rings can start the job within 15 s
    config = replace(config, protocol=replace(config.protocol, pass_s=30))
    stop = threading.Event()
    agent = Agent(store, config)
    serving = threading.Thread(target=agent.serve, args=(stop,), daemon=True)
    serving.start()
    try:
        # the agent leads the pool, has looked at the empty queue and waits 30 s, or a ring
        wait_for("the agent to lead and wait", lambda: agent.leader.leading and agent.node.idle, timeout=60)
        job = tmp_path / "job.yml"
        job.write_text("command: echo rung\n")
        client = Client(store, pool="bell")
        run = client.submit(job)
        deadline = time.monotonic() + 15  # half the agent's beat and pass interval
        while client.status(run.id).started_at is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.status(run.id).started_at is not None, client.status(run.id)
        # its end is concluded at the leader's next pass
        wait_for("the run to succeed", lambda: client.status(run.id).state.value == "succeeded", timeout=90)
    finally:
        stop.set()
        serving.join(30)


def test_only_a_pool_without_a_doorbell_passes_steadily_and_its_receives_follow_the_heartbeat(
    tmp_path: Path,
) -> None:
    """A pool on Azure has no doorbell: its leader passes every `pass_s` while work is queued
    or running, so that an idle node's first look comes just after a pass. A local pool's
    doorbell rings the leader when a node reports, so its leader may back off."""
    plain = AgentSettings(pool="p", name="n", work_dir=tmp_path).with_timings(heartbeat_s=2)
    rung = AgentSettings(pool="p", name="n", work_dir=tmp_path, doorbell=tmp_path / "n.sock").with_timings(
        heartbeat_s=2
    )
    assert AgentSettings(pool="p", name="n", work_dir=tmp_path).protocol.steady_passes
    assert plain.protocol.steady_passes and not rung.protocol.steady_passes
    assert plain.protocol.intake_max_s == 8  # an empty queue is asked again within 4 beats


def test_an_agent_with_a_doorbell_looks_rarely_when_idle(tmp_path: Path) -> None:
    """The ring brings assignments, so the idle node's own looks are only for a ring it missed."""
    from jobrunner.node.agent import DOORBELL_LOOK_FACTOR

    plain = AgentSettings(pool="p", name="p-0", work_dir=tmp_path)
    rung = replace(plain, doorbell=tmp_path / "p-0.sock").with_timings(heartbeat_s=1)
    plain = plain.with_timings(heartbeat_s=1)
    assert plain.protocol.beat_idle_s == 1 and plain.protocol.idle_max_s == 4
    assert (
        rung.protocol.beat_idle_s == DOORBELL_LOOK_FACTOR
        and rung.protocol.idle_max_s == 4 * DOORBELL_LOOK_FACTOR
    )
    assert rung.protocol.pass_s == plain.protocol.pass_s == 1  # the leader's own cadence stays
