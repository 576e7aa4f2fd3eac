"""Retries after a lost answer (the store did the work, the client saw a cut connection), and
the store's memory of trouble that keeps an outage from passing for silent agents."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobrunner.azurite import connection_string
from jobrunner.errors import StoreError
from jobrunner.liveness import Heartbeats, read_heartbeats
from jobrunner.logship import LogShipper
from jobrunner.registry import AgentRecord, beat
from jobrunner.store import RUNS, Retry, Store
from tests.faults.proxy import FaultyProxy

QUICK = Retry(attempts=4, base_s=0.05, max_s=0.1)


@pytest.fixture
def proxied(azurite: str) -> Iterator[tuple[FaultyProxy, Store]]:
    """A store whose blob calls go through a FaultyProxy (queue calls straight to Azurite)."""
    blob_port, queue_port = (int(p) for p in re.findall(r"Endpoint=http://127\.0\.0\.1:(\d+)/", azurite))
    with FaultyProxy(blob_port) as proxy:
        yield proxy, Store.connect(connection_string(proxy.port, queue_port), retry=QUICK)


def test_a_log_append_whose_answer_was_lost_lands_once(
    proxied: tuple[FaultyProxy, Store], azurite: str, tmp_path: Path
) -> None:
    proxy, store = proxied
    shipper = LogShipper(store, "lost-answers/logs/1/", tmp_path / "spool")
    shipper.write("rank0", "line 1")
    assert shipper.ship()
    proxy.lose_answer_to(b"comp=appendblock")
    shipper.write("rank0", "line 2")
    assert shipper.ship() and proxy.lost_answers == 1
    shipper.write("rank0", "line 3")
    assert shipper.close()
    data, _ = Store.connect(azurite).get(RUNS, "lost-answers/logs/1/rank0.txt")
    assert data == b"line 1\nline 2\nline 3\n"


def test_without_the_position_condition_the_retry_would_repeat_the_lines(
    proxied: tuple[FaultyProxy, Store], azurite: str
) -> None:
    """What the guard prevents: the same lost answer with a plain append doubles the data."""
    proxy, store = proxied
    store.append(RUNS, "lost-answers/plain.txt", b"first\n")
    proxy.lose_answer_to(b"comp=appendblock")
    store.append(RUNS, "lost-answers/plain.txt", b"once\n")
    assert proxy.lost_answers == 1
    assert Store.connect(azurite).get(RUNS, "lost-answers/plain.txt")[0] == b"first\nonce\nonce\n"


def test_an_append_at_the_wrong_position_is_refused(proxied: tuple[FaultyProxy, Store]) -> None:
    _, store = proxied
    store.append(RUNS, "lost-answers/other-writer.txt", b"abc", at=0)
    with pytest.raises(StoreError):
        store.append(RUNS, "lost-answers/other-writer.txt", b"def", at=0)


def record(name: str, age_s: float, *, state: str = "busy", job: str | None = "run-1") -> AgentRecord:
    at = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat().replace("+00:00", "Z")
    return AgentRecord(
        name=name, pool="p", pid=1, address="127.0.0.1", state=state,  # type: ignore[arg-type]
        current_job=job, last_heartbeat=at, started_at=at,
    )  # fmt: skip


def test_gone_means_silent_beyond_the_limit_and_the_witness_lag_stopped_or_on_other_work() -> None:
    now = datetime.now(UTC)
    records = {
        "fresh": record("fresh", 1),
        "old": record("old", 12),
        "stopped": record("stopped", 0, state="stopped"),
        "elsewhere": record("elsewhere", 0, job="run-2"),
    }
    beats = Heartbeats(records, stale_after_s=10, lag_s=0, at=now)
    assert not beats.gone("fresh") and not beats.gone("fresh", job_id="run-1")
    assert beats.gone("old") and beats.gone("stopped") and beats.gone("missing")
    assert not beats.gone("elsewhere") and beats.gone("elsewhere", job_id="run-1")
    # the witness's own record is 3 s late: a slow store, not a dead peer
    assert not Heartbeats(records, stale_after_s=10, lag_s=3, at=now).gone("old")


def test_silence_proves_nothing_until_the_store_has_been_steady(
    proxied: tuple[FaultyProxy, Store], azurite: str
) -> None:
    proxy, store = proxied
    stale_after_s = 0.3
    beat(Store.connect(azurite), record("peer", 0).model_copy(update={"pool": "steady"}))
    assert read_heartbeats(store, "steady", stale_after_s, witness="me") is None  # a new client
    time.sleep(stale_after_s + QUICK.max_s + 0.1)
    beats = read_heartbeats(store, "steady", stale_after_s, witness="me")
    assert beats is not None and "peer" in beats.records

    proxy.set_down(True)
    with pytest.raises(StoreError):
        read_heartbeats(store, "steady", stale_after_s, witness="me")
    proxy.set_down(False)
    # the store answers again, but every heartbeat is old now: not evidence yet
    assert read_heartbeats(store, "steady", stale_after_s, witness="me") is None
    time.sleep(stale_after_s + QUICK.max_s + 0.1)
    after = read_heartbeats(store, "steady", stale_after_s, witness="me")
    # steady again for stale_after_s: now the peer's silence (no beat since before the outage)
    # is evidence, and it is judged gone
    assert after is not None and after.gone("peer")
