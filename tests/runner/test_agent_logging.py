"""The agent's own log: levels, the journal's priority prefix, the private rotating file, one
configuration however often it is set up, and no credential in any line, even at debug."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from typer.testing import CliRunner

from jobrunner.cli.main import app
from jobrunner.errors import ConfigError, StoreError
from jobrunner.local.azurite import ACCOUNT_KEY
from jobrunner.node.agent_logging import (
    LEVELS,
    MAX_RECORD_CHARS,
    configure_agent_logging,
    file_handler,
    journal_priority,
    parse_level,
)
from jobrunner.node.config import parse_agent_config
from jobrunner.store.client import Retry, Store

SIG = "TOPSECRETSIGNATURE"
SAS = f"sv=2024-01-01&ss=bq&srt=sco&sp=rwdl&se=2030-01-01&sig={SIG}"
log = logging.getLogger("jobrunner.test_agent_logging")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test configures the process's logging; the next one finds it as pytest left it."""
    root, own = logging.getLogger(), logging.getLogger("jobrunner")
    handlers, root_level, own_level = list(root.handlers), root.level, own.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(root_level)
    own.setLevel(own_level)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_the_level_filters_the_agents_records_and_other_libraries_stay_at_warning(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    configure_agent_logging("warning", log_file=path)
    log.info("an info line")
    log.warning("a warning line")
    log.error("an error line")
    text = path.read_text()
    assert "an info line" not in text and "a warning line" in text and "an error line" in text

    configure_agent_logging("debug", log_file=path)
    log.debug("a debug line")
    logging.getLogger("azure.core.pipeline").info("a request the SDK describes")
    logging.getLogger("azure.core.pipeline").warning("the SDK warns")
    text = path.read_text()
    assert "a debug line" in text and "the SDK warns" in text
    assert "a request the SDK describes" not in text


def test_a_readable_line_has_time_level_logger_and_message(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    configure_agent_logging("info", log_file=path)
    log.warning("run %s: [bold]not markup[/bold]", "run-1")
    (last,) = [line for line in lines(path) if "run-1" in line]
    date, clock, level, logger, *message = last.split(" ")
    assert len(date) == 10 and clock.count(":") == 2 and level == "WARNING"
    assert (
        logger == "jobrunner.test_agent_logging:"
        and " ".join(message) == "run run-1: [bold]not markup[/bold]"
    )


def stderr_to(path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> IO[str]:
    stream = path.open("w", encoding="utf-8")
    request.addfinalizer(stream.close)
    monkeypatch.setattr("sys.stderr", stream)
    return stream


def journal_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """stderr as systemd connects it: a stream whose device and inode JOURNAL_STREAM names."""
    path = tmp_path / "journal"
    stream = stderr_to(path, monkeypatch, request)
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return path


def test_under_systemd_each_record_is_one_line_led_by_its_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    journal = journal_stderr(tmp_path, monkeypatch, request)
    configure_agent_logging("debug", log_file=None)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("handled")
    sys.stderr.flush()
    got = [line for line in lines(journal) if "test_agent_logging" in line]
    assert got[:5] == [
        f"<{p}>jobrunner.test_agent_logging: {m}" for p, m in zip("76432", "diwec", strict=True)
    ]
    assert len(got) == 6, got  # the traceback stays in its record's line
    assert (
        got[5].startswith("<3>jobrunner.test_agent_logging: handled\\nTraceback")
        and "ValueError: boom" in got[5]
    )


def test_a_journal_stream_that_stderr_no_longer_is_gets_readable_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    journal_stderr(tmp_path, monkeypatch, request)
    # `jobrunner agent 2>file` by hand, in a unit's environment
    elsewhere = stderr_to(tmp_path / "redirected", monkeypatch, request)
    configure_agent_logging("info", log_file=None)
    log.warning("w")
    elsewhere.flush()
    (line,) = [line for line in lines(tmp_path / "redirected") if line.endswith(": w")]
    assert not line.startswith("<") and " WARNING jobrunner.test_agent_logging: w" in line


def test_on_a_terminal_the_lines_go_to_it_as_well_as_to_the_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import pty
    import select

    leader, follower = pty.openpty()
    request.addfinalizer(lambda: os.close(leader))
    terminal = os.fdopen(follower, "w", encoding="utf-8")
    request.addfinalizer(terminal.close)
    monkeypatch.setattr("sys.stderr", terminal)
    path = tmp_path / "agent.log"
    configure_agent_logging("info", log_file=path)
    log.warning("seen twice")
    terminal.flush()
    shown = ""
    while "seen twice" not in shown:  # a terminal hands over what was written a write at a time
        ready, _, _ = select.select([leader], [], [], 10)
        assert ready, f"the terminal got only {shown!r}"
        shown += os.read(leader, 65536).decode()
    assert " WARNING jobrunner.test_agent_logging: seen twice" in shown
    assert lines(path)[-1].endswith(" WARNING jobrunner.test_agent_logging: seen twice")


def test_priorities_follow_sd_daemon() -> None:
    assert [journal_priority(LEVELS[name]) for name in ("debug", "info", "warning", "error")] == [7, 6, 4, 3]
    assert journal_priority(logging.CRITICAL) == 2 and journal_priority(5) == 7


def test_the_log_file_is_private_whatever_the_umask_and_rotates_within_bounds(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "agent-0.log"
    old = os.umask(0)
    try:
        configure_agent_logging("info", log_file=path)
        log.info("first")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        handler = file_handler(tmp_path / "small.log", max_bytes=300, backups=2)
        record_log = logging.getLogger("jobrunner.rotation")
        record_log.addHandler(handler)
        try:
            for n in range(60):
                record_log.warning("record %03d %s", n, "x" * 40)
        finally:
            record_log.removeHandler(handler)
            handler.close()
    finally:
        os.umask(old)
    kept = sorted(p.name for p in tmp_path.glob("small.log*"))
    assert kept == ["small.log", "small.log.1", "small.log.2"]
    for p in tmp_path.glob("small.log*"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600 and p.stat().st_size <= 300
    assert "record 059" in (tmp_path / "small.log").read_text()  # the newest is kept, the oldest went
    assert not any("record 000" in p.read_text() for p in tmp_path.glob("small.log*"))


def test_an_older_wider_log_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    path.write_text("before\n")
    path.chmod(0o644)
    configure_agent_logging("info", log_file=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and lines(path)[0] == "before"


def test_configuring_twice_installs_one_set_of_handlers(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    before = len(logging.getLogger().handlers)
    configure_agent_logging("info", log_file=path)
    configure_agent_logging("info", log_file=path)
    assert len(logging.getLogger().handlers) == before + 1
    log.warning("once")
    assert [line for line in lines(path) if line.endswith(": once")] == [lines(path)[-1]]


def test_an_unknown_level_names_the_option_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        configure_agent_logging("verbose", log_file=tmp_path / "agent.log")
    message = str(caught.value)
    assert "--log-level" in message and "'verbose'" in message and "debug, info, warning, error" in message
    assert not (tmp_path / "agent.log").exists()  # refused before anything changed
    assert parse_level("WARNING") == logging.WARNING


@pytest.mark.parametrize("command", [["agent", "--pool", "p1"], ["local-pool", "start"]])
def test_the_commands_refuse_an_unknown_level_in_one_line(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBRUNNER_HOME", str(tmp_path))
    monkeypatch.setenv(
        "JOBRUNNER_STORE", "DefaultEndpointsProtocol=http;AccountName=x;BlobEndpoint=http://127.0.0.1:9/x"
    )
    result = CliRunner().invoke(app, [*command, "--log-level", "loud"])
    assert result.exit_code == 1
    assert "--log-level" in result.output and "debug, info, warning, error" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "pool").exists()


def test_the_agent_config_has_a_log_level() -> None:
    config = parse_agent_config(
        "store: https://stpool123.blob.core.windows.net\npool: p1\nlogLevel: debug\n", source="a.yaml"
    )
    assert config.log_level == "debug"
    with pytest.raises(ConfigError) as caught:
        parse_agent_config(
            "store: https://stpool123.blob.core.windows.net\npool: p1\nlogLevel: loud\n", source="a.yaml"
        )
    assert "a.yaml" in str(caught.value) and "logLevel" in str(caught.value) and "debug" in str(caught.value)


def test_a_record_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    configure_agent_logging("info", log_file=path)
    log.warning("reason: %s", "y" * (10 * MAX_RECORD_CHARS))
    last = lines(path)[-1]
    assert len(last) < MAX_RECORD_CHARS + 100 and last.endswith("more characters)")


# ---------------------------------------------------------------- no secret in any line
def secrets_in(text: str) -> list[str]:
    return [s for s in (ACCOUNT_KEY, SIG, "AccountKey=" + ACCOUNT_KEY[:8]) if s in text]


def test_no_secret_is_logged_even_by_mistake(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    configure_agent_logging("debug", log_file=path)
    log.debug("store %s", f"DefaultEndpointsProtocol=http;AccountName=a;AccountKey={ACCOUNT_KEY};")
    log.debug("input https://files.example/data.csv?%s failed", SAS)
    log.debug("query alone: %s", SAS)
    try:
        raise RuntimeError(f"GET https://st.blob.core.windows.net/runs?{SAS}")
    except RuntimeError:
        log.exception("a traceback")
    text = path.read_text()
    assert secrets_in(text) == [] and "AccountKey=[redacted]" in text and "sig=[redacted]" in text
    assert "https://files.example/data.csv failed" in text


def test_store_retries_at_debug_name_the_operation_and_no_credential(tmp_path: Path, azurite: str) -> None:
    path = tmp_path / "agent.log"
    configure_agent_logging("debug", log_file=path)
    endpoint = "http://127.0.0.1:9/devstoreaccount1"  # nothing listens on port 9
    for target in (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={endpoint};QueueEndpoint={endpoint};",
        f"BlobEndpoint={endpoint};QueueEndpoint={endpoint};SharedAccessSignature={SAS}",
    ):
        store = Store.connect(target, retry=Retry(attempts=3, base_s=0.01, max_s=0.01))
        with pytest.raises(StoreError):
            store.get("runs", "exp/run-1/status.json")
        with pytest.raises(StoreError):
            store.send("pool-p1", "hello")
    live = Store.connect(azurite)
    live.put("fresh-container-for-logs", "a.txt", b"x")  # creates its container first
    text = path.read_text()
    assert secrets_in(text) == [], secrets_in(text)
    retries = [line for line in lines(path) if "read runs/exp/run-1/status.json, try" in line]
    assert len(retries) == 4 and all("again in" in line for line in retries)  # 2 stores x 2 retries
    assert sum("read runs/exp/run-1/status.json failed after 3 tries" in line for line in lines(path)) == 2
    assert any("send to queue pool-p1, try 1" in line for line in lines(path))
    assert any(
        "write fresh-container-for-logs/a.txt: its container or queue is missing" in line
        for line in lines(path)
    )


def test_an_https_input_is_logged_without_its_query(tmp_path: Path, misbehaving_http: str) -> None:
    from jobrunner.node.staging import download_url

    path = tmp_path / "agent.log"
    configure_agent_logging("debug", log_file=path)
    with pytest.raises(ConfigError):
        download_url(f"{misbehaving_http}/gone/data.csv?{SAS}", tmp_path / "in", field="inputs.d")
    text = path.read_text()
    assert secrets_in(text) == [] and f"inputs.d: downloading {misbehaving_http}/gone/data.csv (" in text
