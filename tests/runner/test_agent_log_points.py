"""What the agent's modules log for an operator: node setup, eviction notices, quarantined
messages, and a pool node's agent writing journal lines at its config's `logLevel`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.errors import ConfigError
from jobrunner.node.agent_logging import configure_agent_logging
from jobrunner.node.config import AgentConfig, render_cloud_init
from jobrunner.node.output_sync import OutputSync
from jobrunner.node.pool_agent import NodeSetupError, node_setup_once
from jobrunner.node.preempt import PreemptionWatch
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.scheduler.report import read_nodes
from jobrunner.spec.job import parse_job
from jobrunner.store.client import Store
from jobrunner.store.poison import poison_queue, quarantine
from jobrunner.store.status import RunRef
from tests.faults.events_server import ScheduledEventsServer

ROOT = Path(__file__).resolve().parents[2]
SPEC = parse_job("command: python train.py\n", source="job.yml")


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="jobrunner")
    yield caplog


def said(caplog: pytest.LogCaptureFixture, logger: str, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= level]


def wait_for(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def test_node_setup_says_whether_it_ran_and_how_it_ended(
    tmp_path: Path, records: pytest.LogCaptureFixture
) -> None:
    base = {"store": "https://stpool123.blob.core.windows.net", "pool": "p1", "runDir": str(tmp_path / "run")}
    ok = AgentConfig.model_validate({**base, "nodeSetup": "echo hi"})
    node_setup_once(ok)
    node_setup_once(ok)
    with pytest.raises(NodeSetupError):
        node_setup_once(AgentConfig.model_validate({**base, "nodeSetup": "exit 3"}))
    lines = said(records, "jobrunner.node.pool_agent")
    assert lines[0].startswith("node setup: running (up to 3600 s, output in ")
    assert lines[1:3] == [
        "node setup: done",
        f"node setup: already ran on this boot ({tmp_path}/run/node-setup.done)",
    ]
    assert said(records, "jobrunner.node.pool_agent", logging.ERROR) == [
        "node setup: exited with 3; no work is taken"
    ]


def test_the_eviction_watch_logs_the_notice_and_its_answer_once(records: pytest.LogCaptureFixture) -> None:
    with ScheduledEventsServer() as server:
        watch = PreemptionWatch(server.url, "vm-2", poll_s=0.05).start()
        try:
            wait_for(lambda: server.gets >= 5)
            event_id = server.announce("Preempt", "vm-2")
            wait_for(watch.is_set)
            assert watch.acknowledge()
        finally:
            watch.stop()
    lines = said(records, "jobrunner.node.preempt")
    assert lines[0] == f"scheduled events: {server.url} answers; watching for evictions of vm-2"
    assert sum("answers" in line for line in lines) == 1  # not once a poll
    (warning,) = said(records, "jobrunner.node.preempt", logging.WARNING)
    assert warning.startswith(f"scheduled events: Preempt {event_id} evicts vm-2 (not before ")
    assert lines[-1] == f"scheduled events: acknowledged {event_id}; the eviction may start"


def test_an_endpoint_that_does_not_answer_is_logged(records: pytest.LogCaptureFixture) -> None:
    url = "http://127.0.0.1:9/metadata/scheduledevents"
    watch = PreemptionWatch(url, "vm-2", poll_s=0.05).start()
    try:
        wait_for(lambda: said(records, "jobrunner.node.preempt"))
    finally:
        watch.stop()
    assert said(records, "jobrunner.node.preempt")[0].startswith(f"scheduled events: {url} does not answer (")


def test_a_quarantined_message_is_a_warning_naming_the_queue_and_reason(
    azurite: str, records: pytest.LogCaptureFixture
) -> None:
    quarantine(Store.connect(azurite), "logpool", b"not json at all", "the message is not JSON")
    (line,) = said(records, "jobrunner.store.poison", logging.WARNING)
    assert line == (
        f"quarantined a message of pool logpool to queue {poison_queue('logpool')} (it names no run): "
        "the message is not JSON"
    )


def test_output_sync_says_what_it_sent_restored_and_when_it_was_interrupted(
    azurite: str, tmp_path: Path, records: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    ref = RunRef(experiment="logs", id="run-20261202-000000-abcdef")
    store = Store.connect(azurite)
    sync = OutputSync(store, ref, SPEC, {"model": folder})
    sync.sync()
    sync.interrupt()
    sync.interrupt()  # a second notice says nothing new
    sync.sync(final=True)
    restored = tmp_path / "next-attempt"
    OutputSync(store, ref, SPEC, {"model": restored}).restore()
    lines = said(records, "jobrunner.node.output_sync")
    assert (
        lines[0]
        == f"{ref.id} outputs: periodic sync, 1 of 1 changed file(s) now whole in the store, 7 bytes sent"
    )
    assert said(records, "jobrunner.node.output_sync", logging.INFO) == [
        f"{ref.id} outputs: the sync under way stops at its next block",
        f"{ref.id} outputs: final sync, 0 of 0 changed file(s) now whole in the store, 7 bytes sent",
        f"{ref.id} outputs: 1 file(s) of earlier attempts restored",
    ]


def test_a_log_file_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "agent.log").mkdir()
    with pytest.raises(ConfigError) as caught:
        configure_agent_logging("info", log_file=tmp_path / "agent.log")
    assert f"--log-file {tmp_path / 'agent.log'}: cannot be opened" in str(caught.value)


@pytest.mark.slow
def test_a_pool_nodes_agent_writes_journal_lines_at_its_configs_level(azurite: str, tmp_path: Path) -> None:
    """`jobrunner agent --config` as the unit starts it: stderr is the journal stream."""
    cfg = AgentConfig(
        store=azurite, pool="journal-pool", name="vm-j", address="127.0.0.1", work_dir=str(tmp_path / "work"),
        run_dir=str(tmp_path / "run"), scheduled_events_url=None, heartbeat_s=1, stale_after_s=5,
        log_level="debug",
    )  # fmt: skip
    config = tmp_path / "custom-data"
    config.write_text(render_cloud_init(cfg))
    journal = tmp_path / "journal"
    with journal.open("wb") as stream:
        st = os.fstat(stream.fileno())
        env = {k: v for k, v in os.environ.items() if k not in ("JOBRUNNER_STORE", "JOBRUNNER_LOG_LEVEL")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobrunner", "agent", "--config", str(config)],
            cwd=ROOT, stdout=stream, stderr=stream, stdin=subprocess.DEVNULL,
            env={**env, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    store = Store.connect(azurite)
    try:
        sched = AzurePoolStore(store, "journal-pool")
        wait_for(lambda: proc.poll() is not None or read_nodes(sched), timeout=60)
        assert proc.poll() is None, journal.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    lines = journal.read_text().splitlines()
    logged = [line for line in lines if line.startswith("<")]
    assert all(line[:3] in ("<3>", "<4>", "<6>", "<7>") and line[3:13] == "jobrunner." for line in logged), (
        logged
    )
    assert any(
        line.startswith("<6>jobrunner.node.agent_logging: agent log at level debug to the journal")
        for line in lines
    )
    assert any(
        line.startswith("<6>jobrunner.node.pool_agent: config ") and "agent vm-j, pool journal-pool" in line
        for line in lines
    )
    assert any(line.startswith("<7>jobrunner.store.client: job store ") for line in lines)
    assert any(
        line.startswith("<6>jobrunner.node.agent: agent vm-j serving pool journal-pool") for line in lines
    )
    assert any(line.startswith("<6>jobrunner.node.pool_agent: node vm-j at 127.0.0.1: ") for line in lines)
    key = azurite.split("AccountKey=", 1)[1].split(";", 1)[0]
    assert key not in journal.read_text()
