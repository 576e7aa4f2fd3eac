"""Code snapshots leave out what a run does not need; trees round-trip through a datastore."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from jobrunner.errors import NotFoundError, StoreError
from jobrunner.node.staging import (
    TRANSFER_THREADS,
    StagingStopped,
    code_files,
    download_tree,
    pack_code,
    unpack_code,
    upload_tree,
)
from jobrunner.store.client import Store


def test_snapshot_leaves_out_git_caches_and_ignored_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel in (
        "train.py",
        "pkg/model.py",
        "pkg/__pycache__/model.pyc",
        ".git/HEAD",
        "data/big.bin",
        "notes.log",
    ):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    (src / ".amlignore").write_text("# comment\n/data\n*.log\n")
    assert sorted(p.as_posix() for p in code_files(src)) == [".amlignore", "pkg/model.py", "train.py"]
    dest = tmp_path / "dest"
    unpack_code(pack_code(src), dest)
    assert (dest / "pkg" / "model.py").read_text() == "pkg/model.py" and not (dest / "data").exists()


def test_tree_round_trip_with_progress(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    (src / "a" / "one.txt").write_text("1" * 1000)
    (src / "two.txt").write_text("2" * 500)
    seen: list[tuple[int, int]] = []
    assert upload_tree(store, "staging-test", src, "sets/x", progress=lambda d, t: seen.append((d, t))) == 2
    assert seen[-1] == (1500, 1500)
    assert download_tree(store, "staging-test", "sets/x", tmp_path / "out") == 2
    assert (tmp_path / "out" / "a" / "one.txt").read_text() == "1" * 1000
    # a path naming one file downloads that file; a path with nothing under it is an error
    assert download_tree(store, "staging-test", "sets/x/two.txt", tmp_path / "single") == 1
    assert (tmp_path / "single" / "two.txt").exists()
    with pytest.raises(NotFoundError):
        download_tree(store, "staging-test", "sets/nothing", tmp_path / "none")


class _InFlight(Store):
    """The real store (`_InFlight.connect`), noting how many transfers run at once (and failing
    the one named `fail`)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.fail: str | None = None
        self.now = self.most = 0
        self._lock = threading.Lock()

    def _track(self, name: str, transfer: Callable[[], None]) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.02)  # long enough for the others to start meanwhile
            if name == self.fail:
                raise StoreError(f"{name}: refused")
            transfer()
        finally:
            with self._lock:
                self.now -= 1

    def upload_file(self, container: str, name: str, path: Path, **kw: Any) -> None:
        self._track(name, lambda: super(_InFlight, self).upload_file(container, name, path, **kw))

    def download_file(self, container: str, name: str, path: Path, **kw: Any) -> None:
        self._track(name, lambda: super(_InFlight, self).download_file(container, name, path, **kw))


def test_many_files_move_several_at_a_time_and_a_failure_is_not_lost(azurite: str, tmp_path: Path) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(40):
        (src / f"part-{i:02d}.bin").write_bytes(bytes([i]) * (100 + i))
    total = sum(100 + i for i in range(40))
    store = _InFlight.connect(azurite)
    assert isinstance(store, _InFlight)
    seen: list[tuple[int, int]] = []
    assert upload_tree(store, "staging-many", src, "set", progress=lambda d, t: seen.append((d, t))) == 40
    assert 1 < store.most <= TRANSFER_THREADS
    assert seen[-1] == (total, total) and all(d <= t for d, t in seen)
    store.most = 0
    assert download_tree(store, "staging-many", "set", tmp_path / "back") == 40
    assert 1 < store.most <= TRANSFER_THREADS
    assert all((tmp_path / "back" / p.name).read_bytes() == p.read_bytes() for p in src.iterdir())
    store.fail = "set/part-07.bin"
    with pytest.raises(StoreError, match="part-07"):
        download_tree(store, "staging-many", "set", tmp_path / "again")


class _InFlightRequests:
    """Observes the SDK's requests (its request and response hooks): how many were under way at once."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()

    def on_request(self, request: Any) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def on_response(self, response: Any) -> None:
        with self._lock:
            self.now -= 1


def test_a_blob_too_large_for_one_request_moves_over_several_connections(
    azurite: str, tmp_path: Path
) -> None:
    # above the SDK's single-request limits (64 MiB up, 32 MiB down): sent and read in parts
    big = tmp_path / "big.bin"
    block = bytes(range(256)) * 4096  # 1 MiB
    with open(big, "wb") as f:
        for i in range(66):
            f.write(block[i:] + block[:i])
    watch = _InFlightRequests()
    blobs = BlobServiceClient.from_connection_string(
        azurite, raw_request_hook=watch.on_request, raw_response_hook=watch.on_response
    )
    store = Store(blobs, QueueServiceClient.from_connection_string(azurite), description="test")
    seen: list[int] = []
    store.upload_file("staging-big", "big.bin", big, progress=seen.append)
    assert seen[-1] == big.stat().st_size
    assert watch.most > 1
    watch.most = 0
    store.download_file("staging-big", "big.bin", tmp_path / "back.bin")
    assert watch.most > 1
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()


def test_staging_stops_between_files_and_during_a_large_download(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    src = tmp_path / "set"
    src.mkdir()
    (src / "small.txt").write_text("x")
    (src / "large.bin").write_bytes(bytes(range(256)) * (160 * 1024))  # 40 MiB: read in parts
    upload_tree(store, "staging-stop", src, "set")
    stop = threading.Event()
    stop.set()
    with pytest.raises(StagingStopped):
        download_tree(store, "staging-stop", "set", tmp_path / "none", stop=stop)
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
    stop.clear()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done > 0 and done < total:
            stop.set()  # a cancel comes while the large blob arrives

    with pytest.raises(StagingStopped):
        download_tree(store, "staging-stop", "set/large.bin", tmp_path / "part", progress=progress, stop=stop)
    assert seen and max(seen) < 40 * 1024 * 1024  # it did not go on to the end
