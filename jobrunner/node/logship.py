"""Job logs: spooled to local disk first, shipped to append blobs in batches, each byte once.

Writers (the launcher's output threads) only append to a local spool file per stream, by
the chunk read from the pipe (`write_chunk`: one `write` call, no lock, no decoding, no line
splitting): no network call on the job's output path, so a chatty job is not slowed down
and a store outage loses nothing. The spool is opened to append (`O_APPEND`), so writers of
one stream on several threads (the agent's notes) never overwrite each other, and the
shipper takes the spool's length from the file itself rather than from a count the writers
would have to keep under a lock. A shipper thread wakes every `interval_s`, and for each
stream sends whatever the spool holds beyond what it already shipped, in appends of at most
4 MiB (the service's limit per append block). A failed append is retried on the next round
from the same offset; `close()` ships the rest and reports whether everything made it. Each
append is conditioned on the blob's length (`Store.append(at=...)`), so an append that
landed but whose answer was lost (a timeout, the store going down mid-request) is never sent
twice. When the answers to every try of an append were lost, the round gives up on it
although it landed, and the next round, sending more from the same offset, meets a longer
blob: the shipper then reads what is there beyond that offset, and when it is the spool's
bytes, goes on after it (a log would otherwise stay stuck there for good). Nothing is ever
uploaded again as a whole.

A stream is a local file and a blob: by default `<spool>/<stream>.txt` and
`<prefix><stream>.txt`; `open_stream` names both (the per-process stream indexes that Batch
AI's per-process logs are a view of, `jobrunner.node.batchai_runtime`). `LogReader` reads the
`.txt` blobs only.

Blob names: `runs/<experiment>/<id>/logs/<attempt>/<stream>.txt`; reading them back is
`LogReader` (`jobrunner logs`, `--follow`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from jobrunner.errors import ConflictError, NotFoundError, StoreError
from jobrunner.store.client import MAX_APPEND_BLOCK, RUNS, Store


class _Stream:
    def __init__(self, path: Path, blob: str) -> None:
        self.path = path
        self.blob = blob
        path.parent.mkdir(parents=True, exist_ok=True)
        # unbuffered: a chunk is one write(2), and the shipper sees every byte written so far
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115 - open for the stream's life
        self.shipped = 0  # an older spool of it goes up too

    def size(self) -> int:
        """The spool's length now: every write(2) that returned, and maybe the start of one
        under way (shipped now, its rest next round: bytes go up in order all the same)."""
        return self.path.stat().st_size if self.file.closed else os.fstat(self.file.fileno()).st_size


class LogShipper:
    """Spools named streams to `spool_dir` and ships them under `prefix` in the `runs` container."""

    def __init__(self, store: Store, prefix: str, spool_dir: Path, *, interval_s: float = 2.0) -> None:
        self._store = store
        self._prefix = prefix
        self._spool = spool_dir
        self._interval = interval_s
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ship_lock = threading.Lock()
        spool_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> LogShipper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_stream(self, name: str, path: Path, blob: str) -> None:
        """Spool stream `name` to `path` and ship it to `blob` (in `runs`), instead of the
        defaults. OSError when `path` cannot be opened."""
        with self._lock:
            if name not in self._streams:
                self._streams[name] = _Stream(path, blob)

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)  # a dict read is atomic: the lock only guards adding
        if stream is not None:
            return stream
        with self._lock:
            stream = self._streams.get(name)
            if stream is None:
                stream = self._streams[name] = _Stream(
                    self._spool / f"{name}.txt", f"{self._prefix}{name}.txt"
                )
            return stream

    def write_chunk(self, name: str, data: bytes) -> None:
        """Append `data` to stream `name` as it is (one write); no store I/O here."""
        if data:
            self._stream(name).file.write(data)

    def write(self, name: str, text: str) -> None:
        """Append a line of text to stream `name` (adding a newline when missing)."""
        data = text.encode("utf-8", errors="replace")
        self.write_chunk(name, data if data.endswith(b"\n") else data + b"\n")

    def sink(self, name: str) -> Callable[[str], None]:
        """A writer of lines bound to one stream."""
        return lambda text: self.write(name, text)

    def start(self) -> None:
        """Start shipping in the background."""
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self.ship()

    def ship(self) -> bool:
        """Send everything spooled so far; False when the store refused some of it (kept for later)."""
        with self._ship_lock:
            with self._lock:
                streams = list(self._streams.values())
            ok = True
            for stream in streams:
                try:
                    self._ship_stream(stream, stream.size())
                except StoreError:
                    ok = False
            return ok

    def _ship_stream(self, stream: _Stream, size: int) -> None:
        if size <= stream.shipped:
            return
        with open(stream.path, "rb") as f:
            while stream.shipped < size:
                f.seek(stream.shipped)
                chunk = f.read(min(MAX_APPEND_BLOCK, size - stream.shipped))
                if not chunk:
                    break
                try:
                    # at the length shipped so far: a retried append never lands twice
                    self._store.append(RUNS, stream.blob, chunk, at=stream.shipped)
                except ConflictError:
                    stream.shipped = self._landed(stream, f)
                    continue
                stream.shipped += len(chunk)

    def _landed(self, stream: _Stream, spool: BinaryIO) -> int:
        """How far the blob really goes when an append met another length: an append of an
        earlier round that landed although the store's answers to all its tries were lost
        (the round gave up on it, and this round sent more from the same offset). The blob's
        bytes beyond what was known shipped must be the spool's; ConflictError otherwise."""
        landed, _ = self._store.get(RUNS, stream.blob, offset=stream.shipped)
        spool.seek(stream.shipped)
        if not landed or spool.read(len(landed)) != landed:
            raise ConflictError(
                f"log blob {RUNS}/{stream.blob} holds {len(landed)} byte(s) after offset "
                f"{stream.shipped} that the spool {stream.path} does not",
                fix="another writer appends to this log blob: give each node its own log names",
            )
        return stream.shipped + len(landed)

    def close(self) -> bool:
        """Stop the thread, ship the rest, close the spool files. False if some could not be shipped."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        ok = self.ship()
        with self._lock:
            for stream in self._streams.values():
                stream.file.close()
        return ok


class LogReader:
    """Reads a run's log blobs, remembering how far it got (for `--follow`)."""

    def __init__(self, store: Store, prefix: str) -> None:
        self._store = store
        self._prefix = prefix
        self._offsets: dict[str, int] = {}

    def streams(self) -> list[str]:
        """The stream names shipped so far, sorted."""
        return sorted(
            b.name.removeprefix(self._prefix).removesuffix(".txt")
            for b in self._store.list(RUNS, self._prefix)
            if b.name.endswith(".txt")
        )

    def read_new(self) -> list[tuple[str, str]]:
        """(stream, text) for every stream that grew since the last call."""
        out: list[tuple[str, str]] = []
        for blob in sorted(self._store.list(RUNS, self._prefix), key=lambda b: b.name):
            if not blob.name.endswith(".txt"):
                continue  # a stream index (jobrunner.node.batchai_runtime), not text to show
            seen = self._offsets.get(blob.name, 0)
            if blob.size <= seen:
                continue
            try:
                data, _ = self._store.get(RUNS, blob.name, offset=seen)
            except NotFoundError:
                continue
            self._offsets[blob.name] = seen + len(data)
            name = blob.name.removeprefix(self._prefix).removesuffix(".txt")
            out.append((name, data.decode("utf-8", errors="replace")))
        return out
