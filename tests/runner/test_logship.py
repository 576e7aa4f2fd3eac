"""Log shipping: spooled lines reach append blobs in order, in few appends, and survive an outage."""

from __future__ import annotations

import time
from pathlib import Path

from jobrunner.azurite import connection_string, free_port, start_azurite
from jobrunner.logship import LogReader, LogShipper
from jobrunner.store import MAX_APPEND_BLOCK, RUNS, Retry, Store


def test_lines_arrive_in_order_per_stream_and_the_reader_follows(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    reader = LogReader(store, "ship/1/logs/")
    with LogShipper(store, "ship/1/logs/", tmp_path, interval_s=0.1) as shipper:
        for i in range(1000):
            shipper.write("node-0", f"line {i}")
        shipper.write("agent.n0", "note")
        deadline = time.monotonic() + 10
        while not reader.streams() and time.monotonic() < deadline:
            time.sleep(0.05)
    got = dict(reader.read_new())
    assert got["node-0"].splitlines() == [f"line {i}" for i in range(1000)]
    assert got["agent.n0"] == "note\n"
    assert reader.read_new() == []  # nothing new: the reader remembers its offsets


def test_a_big_burst_goes_in_blocks_of_at_most_4_mib(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    shipper = LogShipper(store, "ship/2/logs/", tmp_path, interval_s=60)
    line = "x" * 999
    for _ in range(6000):  # ~6 MB: two appends
        shipper.write("chatty", line)
    assert shipper.close()
    assert store.size(RUNS, "ship/2/logs/chatty.txt") == 6000 * 1000 > MAX_APPEND_BLOCK


def test_nothing_is_lost_while_the_store_is_down(tmp_path: Path) -> None:
    blob_port, queue_port = free_port(), free_port()
    store = Store.connect(connection_string(blob_port, queue_port), retry=Retry(attempts=2, base_s=0.05))
    shipper = LogShipper(store, "ship/3/logs/", tmp_path / "spool", interval_s=3600)
    shipper.write("node-0", "written while the store was down")
    assert shipper.ship() is False  # refused, kept in the spool
    server = start_azurite(tmp_path / "azurite", ports=(blob_port, queue_port))
    try:
        shipper.write("node-0", "written after it came back")
        assert shipper.close() is True
        data, _ = store.get(RUNS, "ship/3/logs/node-0.txt")
        assert data.decode().splitlines() == [
            "written while the store was down",
            "written after it came back",
        ]
    finally:
        server.stop()
