"""Log shipping: spooled chunks reach append blobs in order, each byte in exactly one append
of at most 4 MiB, at the offset it belongs (never twice, even when an answer is lost or the
store is down)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from jobrunner.local.azurite import connection_string, free_port, start_azurite
from jobrunner.node.logship import LogReader, LogShipper
from jobrunner.store.client import MAX_APPEND_BLOCK, RUNS, Retry, Store
from tests.faults.proxy import FaultyProxy


class Appends(Store):
    """The real store, noting every append the shipper asks for: (blob, bytes, at)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner._blobs, inner._queues, description=inner.description, retry=inner.retry)
        self.calls: list[tuple[str, int, int | None]] = []

    def append(self, container: str, name: str, data: bytes, **kw: Any) -> None:
        self.calls.append((name, len(data), kw.get("at")))
        super().append(container, name, data, **kw)

    def of(self, blob: str) -> list[tuple[int, int | None]]:
        return [(size, at) for name, size, at in self.calls if name == blob]


def contiguous(appends: list[tuple[int, int | None]]) -> bool:
    """Each append starts where the one before ended: no byte sent twice, none skipped."""
    end = 0
    for size, at in appends:
        if at != end or not 0 < size <= MAX_APPEND_BLOCK:
            return False
        end += size
    return True


def test_lines_arrive_in_order_per_stream_and_the_reader_follows(azurite: str, tmp_path: Path) -> None:
    store = Appends(Store.connect(azurite))
    reader = LogReader(store, "ship/1/logs/")
    with LogShipper(store, "ship/1/logs/", tmp_path, interval_s=0.1) as shipper:
        for i in range(1000):
            shipper.write_chunk("node-0", f"line {i}\n".encode())
        shipper.write("agent.n0", "note")
        deadline = time.monotonic() + 30
        while not reader.streams() and time.monotonic() < deadline:
            time.sleep(0.05)
    got = dict(reader.read_new())
    assert got["node-0"].splitlines() == [f"line {i}" for i in range(1000)]
    assert got["agent.n0"] == "note\n"
    assert reader.read_new() == []  # nothing new: the reader remembers its offsets
    node = store.of("ship/1/logs/node-0.txt")
    assert contiguous(node) and sum(size for size, _ in node) == len(got["node-0"])
    assert len(node) < 1000  # spooled chunks go up together, not an append per write


def test_writers_of_one_stream_on_several_threads_lose_and_mix_no_line(azurite: str, tmp_path: Path) -> None:
    """Writes take no lock: the spool appends (O_APPEND) and the shipper reads its length from
    the file, so threads writing one stream while rounds ship it lose nothing."""
    store = Store.connect(azurite)
    shipper = LogShipper(store, "ship/8/logs/", tmp_path, interval_s=0.01)
    shipper.start()

    def writer(t: int) -> None:
        for i in range(2000):
            shipper.write("agent.n0", f"thread {t} note {i}")

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shipper.close()
    lines = store.get(RUNS, "ship/8/logs/agent.n0.txt")[0].decode().splitlines()
    for t in range(4):
        assert [x for x in lines if x.startswith(f"thread {t} ")] == [
            f"thread {t} note {i}" for i in range(2000)
        ]
    assert len(lines) == 8000


def test_a_big_burst_goes_in_blocks_of_at_most_4_mib(azurite: str, tmp_path: Path) -> None:
    store = Appends(Store.connect(azurite))
    shipper = LogShipper(store, "ship/2/logs/", tmp_path, interval_s=60)
    line = b"x" * 999 + b"\n"
    for _ in range(6000):  # 6,000,000 bytes: a full block and the rest
        shipper.write_chunk("chatty", line)
    assert shipper.close()
    assert shipper.close()  # a second close has nothing left to send
    assert store.of("ship/2/logs/chatty.txt") == [
        (MAX_APPEND_BLOCK, 0),
        (6_000_000 - MAX_APPEND_BLOCK, MAX_APPEND_BLOCK),
    ]
    assert store.size(RUNS, "ship/2/logs/chatty.txt") == 6_000_000


def test_nothing_is_lost_while_the_store_is_down(tmp_path: Path) -> None:
    blob_port, queue_port = free_port(), free_port()
    store = Appends(
        Store.connect(connection_string(blob_port, queue_port), retry=Retry(attempts=2, base_s=0.05))
    )
    shipper = LogShipper(store, "ship/3/logs/", tmp_path / "spool", interval_s=3600)
    first, second = b"written while the store was down\n", b"written after it came back\n"
    shipper.write_chunk("node-0", first)
    assert shipper.ship() is False  # refused, kept in the spool
    server = start_azurite(tmp_path / "azurite", ports=(blob_port, queue_port))
    try:
        shipper.write_chunk("node-0", second)
        assert shipper.close() is True
        data, _ = store.get(RUNS, "ship/3/logs/node-0.txt")
        assert data == first + second
        # the refused append, then both lines in one append from the same offset
        assert store.of("ship/3/logs/node-0.txt") == [(len(first), 0), (len(first + second), 0)]
    finally:
        server.stop()


def proxied(azurite: str) -> tuple[FaultyProxy, int]:
    """A FaultyProxy in front of Azurite's blob port, and Azurite's queue port."""
    parts = dict(part.split("=", 1) for part in azurite.split(";") if "=" in part)
    blob_port, queue_port = (
        int(parts[k].rsplit(":", 1)[1].split("/")[0]) for k in ("BlobEndpoint", "QueueEndpoint")
    )
    return FaultyProxy(blob_port), queue_port


def test_an_append_whose_answer_was_lost_is_not_sent_twice(azurite: str, tmp_path: Path) -> None:
    direct = Store.connect(azurite)
    proxy, queue_port = proxied(azurite)
    with proxy:
        store = Appends(Store.connect(connection_string(proxy.port, queue_port), retry=Retry(base_s=0.05)))
        shipper = LogShipper(store, "ship/4/logs/", tmp_path, interval_s=3600)
        lines = [f"line {i}\n".encode() for i in range(50)]
        for i, line in enumerate(lines):
            shipper.write_chunk("node-0", line)
            if i % 10 == 9:
                proxy.lose_answer_to(b"comp=appendblock")  # it lands; the shipper hears nothing
                assert shipper.ship()
        assert shipper.close()
        assert proxy.lost_answers == 5
    data, _ = direct.get(RUNS, "ship/4/logs/node-0.txt")
    assert data == b"".join(lines)  # every line once, in order
    assert contiguous(store.of("ship/4/logs/node-0.txt"))


def test_an_append_given_up_after_every_answer_was_lost_is_found_landed_next_round(
    azurite: str, tmp_path: Path
) -> None:
    """The store gave up on an append (no try was answered) though its first try landed; the
    next round sends more from the same offset, meets the longer blob, and goes on after what
    landed instead of failing there for good."""
    direct = Store.connect(azurite)
    proxy, queue_port = proxied(azurite)
    with proxy:
        retry = Retry(attempts=3, base_s=0.05)
        store = Appends(Store.connect(connection_string(proxy.port, queue_port), retry=retry))
        shipper = LogShipper(store, "ship/6/logs/", tmp_path, interval_s=3600)
        first, second = b"landed, never heard of\n", b"written after the store gave up\n"
        shipper.write_chunk("node-0", first)
        proxy.lose_answer_to(b"comp=appendblock", times=retry.attempts)  # every try of the append
        assert shipper.ship() is False
        assert proxy.lost_answers == retry.attempts
        assert direct.get(RUNS, "ship/6/logs/node-0.txt")[0] == first  # it landed all the same
        shipper.write_chunk("node-0", second)
        assert shipper.close()
    assert direct.get(RUNS, "ship/6/logs/node-0.txt")[0] == first + second  # each byte once
    assert store.of("ship/6/logs/node-0.txt")[-2:] == [(len(first + second), 0), (len(second), len(first))]


def test_a_blob_holding_bytes_the_spool_does_not_is_refused(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    store.append(RUNS, "ship/7/logs/node-0.txt", b"someone else's\n", at=0)
    shipper = LogShipper(store, "ship/7/logs/", tmp_path, interval_s=3600)
    shipper.write_chunk("node-0", b"mine\n")
    assert shipper.close() is False  # kept in the spool, never written after another's bytes
    assert store.get(RUNS, "ship/7/logs/node-0.txt")[0] == b"someone else's\n"


def test_the_bytes_on_the_wire_are_the_bytes_of_the_log(azurite: str, tmp_path: Path) -> None:
    bodies: list[int] = []

    def on_request(request: Any) -> None:
        body = request.http_request.body
        bodies.append(len(body) if isinstance(body, bytes) else 0)

    blobs = BlobServiceClient.from_connection_string(azurite, raw_request_hook=on_request)
    store = Store(blobs, QueueServiceClient.from_connection_string(azurite), description="test")
    shipper = LogShipper(store, "ship/5/logs/", tmp_path, interval_s=3600)
    for i in range(3):
        shipper.write_chunk("node-0", b"%d" % i * 100_000)
        assert shipper.ship()  # the first round meets no blob yet: it is made before any data goes
    assert shipper.close()
    assert sum(bodies) == store.size(RUNS, "ship/5/logs/node-0.txt") == 300_000
