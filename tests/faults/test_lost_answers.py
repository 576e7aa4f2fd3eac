"""Retries after a lost answer (the store did the work, the client saw a cut connection), and
the store's memory of trouble that keeps an outage from passing for silent agents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.errors import StoreError
from jobrunner.local.azurite import connection_string
from jobrunner.node.logship import LogShipper
from jobrunner.store.client import RUNS, Retry, Store
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
