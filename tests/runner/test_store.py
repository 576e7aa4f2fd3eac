"""The job store against a real Azurite: blobs, ETag races, append blobs, queues, retries."""

from __future__ import annotations

import time

import pytest

from jobrunner.errors import ConflictError, NotFoundError, StoreError
from jobrunner.local.azurite import connection_string, free_port
from jobrunner.store.client import Retry, Store
from tests.faults.proxy import FaultyProxy


@pytest.fixture
def store(azurite: str) -> Store:
    return Store.connect(azurite)


def test_blob_round_trip_creates_the_container_on_first_use(store: Store) -> None:
    etag = store.put("fresh-container", "a/b.json", b'{"x": 1}')
    data, read_etag = store.get("fresh-container", "a/b.json")
    assert data == b'{"x": 1}'
    assert read_etag.strip('"') == etag.strip('"')
    assert [b.name for b in store.list("fresh-container", "a/")] == ["a/b.json"]


def test_etag_guarded_write_loses_a_race(store: Store) -> None:
    first = store.put("runs", "race/status.json", b"1")
    store.put("runs", "race/status.json", b"2", if_match=first)
    with pytest.raises(ConflictError):
        store.put("runs", "race/status.json", b"3", if_match=first)
    with pytest.raises(ConflictError):
        store.put("runs", "race/status.json", b"4", if_absent=True)
    assert store.get("runs", "race/status.json")[0] == b"2"


def test_missing_blob_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get("runs", "no/such/blob")
    assert store.list("no-such-container") == []


def test_append_blob_is_created_then_grows_and_reads_from_an_offset(store: Store) -> None:
    store.append("runs", "append/log.txt", b"hello\n")
    store.append("runs", "append/log.txt", b"world\n")
    assert store.get("runs", "append/log.txt")[0] == b"hello\nworld\n"
    assert store.get("runs", "append/log.txt", offset=6)[0] == b"world\n"


def test_queue_hold_renew_delete(store: Store) -> None:
    queue = "pool-store-test"
    assert store.receive(queue, visibility_timeout_s=5) is None
    store.send(queue, "job-1")
    held = store.receive(queue, visibility_timeout_s=1)
    assert held is not None and held.content == b"job-1"
    held = store.renew(queue, held, visibility_timeout_s=30)
    time.sleep(1.5)  # past the first timeout: still hidden because it was renewed
    assert store.receive(queue, visibility_timeout_s=5) is None
    store.delete_message(queue, held)
    assert store.queue_length(queue) == 0


def test_unrenewed_message_comes_back_after_its_visibility_timeout(store: Store) -> None:
    queue = "pool-store-timeout"
    store.send(queue, "job-2")
    assert store.receive(queue, visibility_timeout_s=1) is not None
    time.sleep(1.5)
    again = store.receive(queue, visibility_timeout_s=5)
    assert again is not None and again.content == b"job-2"


@pytest.mark.timeout(60)  # a store call that never gives up fails here, not at the suite's 300 s
def test_unreachable_store_gives_up_with_store_error_after_its_attempts() -> None:
    with FaultyProxy(free_port()) as proxy:
        proxy.set_down(True)  # every connection taken and cut at once
        dead = Store.connect(connection_string(proxy.port, free_port()), retry=Retry(attempts=3, base_s=0.05))
        with pytest.raises(StoreError, match="failed") as raised:
            dead.get("runs", "x")
    assert proxy.connections == 3, "one try and two retries, then the store call gives up"
    assert "JOBRUNNER_STORE" in str(raised.value)


def test_bad_store_setting_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="neither a connection string"):
        Store.connect("ftp://nowhere")


def test_the_environments_proxy_is_honoured_though_read_once(
    azurite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The proxy named in the environment is a closed port: calls fail through it, unless
    # NO_PROXY exempts the store's host. Both are read when the store is connected.
    # (the lower-case names win where both are set: a machine's own proxy must not answer)
    for name in ("http_proxy", "all_proxy", "ALL_PROXY", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    proxied = Store.connect(azurite, retry=Retry(attempts=2, base_s=0.05))
    with pytest.raises(StoreError):
        proxied.put("proxied", "a.txt", b"x")
    with pytest.raises(StoreError):
        proxied.send("pool-proxied", "x")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = Store.connect(azurite, retry=Retry(attempts=2, base_s=0.05))
    direct.put("proxied", "a.txt", b"x")
    direct.send("pool-proxied", "x")
    # the first client keeps what it read
    with pytest.raises(StoreError):
        proxied.get("proxied", "a.txt")
