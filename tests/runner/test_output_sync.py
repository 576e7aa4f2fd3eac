"""Output sync sends only what is new: a growing file as new blocks, each byte once; a
rewritten block alone; an unchanged file never again; an interrupted sync resumed from the
blocks it staged, newest file first; files left to the log shipper left alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jobrunner.node.output_sync import BLOCK_BYTES, OutputSync
from jobrunner.spec.job import parse_job
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import RunRef

MIB = 1 << 20
SPEC = parse_job("command: python train.py\n", source="job.yml")


class Calls(Store):
    """The real store, noting the transfers asked for: (kind, blob, bytes)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner._blobs, inner._queues, description=inner.description, retry=inner.retry)
        self.calls: list[tuple[str, str, int]] = []
        self.after_blocks: tuple[int, Any] | None = None  # (n, action): run action after n blocks

    def upload_file(self, container: str, name: str, path: Path, **kw: Any) -> None:
        super().upload_file(container, name, path, **kw)
        self.calls.append(("whole", name, path.stat().st_size))

    def stage_block(self, container: str, name: str, block_id: str, data: bytes) -> None:
        super().stage_block(container, name, block_id, data)
        self.calls.append(("block", name, len(data)))
        if self.after_blocks and sum(c[0] == "block" for c in self.calls) == self.after_blocks[0]:
            self.after_blocks[1]()

    def sent(self, name: str | None = None) -> int:
        return sum(size for _, blob, size in self.calls if name is None or blob.endswith(name))


def pattern(size: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(256)) * (size // 256) + b"t" * (size % 256)


def make(azurite: str, tmp_path: Path, run: str, **kw: Any) -> tuple[Calls, OutputSync, Path]:
    store = Calls(Store.connect(azurite))
    folder = tmp_path / "out"
    folder.mkdir()
    return store, OutputSync(store, RunRef(experiment="sync", id=run), SPEC, {"out": folder}, **kw), folder


def blob(store: Store, run: str, rel: str) -> bytes:
    return store.get(RUNS, f"sync/{run}/outputs/out/{rel}")[0]


def test_a_growing_file_goes_up_as_new_blocks_each_byte_once(azurite: str, tmp_path: Path) -> None:
    store, sync, folder = make(azurite, tmp_path, "grow")
    data = pattern(30 * MIB + 1000)
    log = folder / "train.log"
    log.write_bytes(data[: 10 * MIB])
    assert sync.sync() == 0  # still growing: the two full blocks go, the partial third waits
    assert store.sent() == 2 * BLOCK_BYTES
    assert blob(store, "grow", "train.log") == data[: 2 * BLOCK_BYTES]
    with open(log, "ab") as f:
        f.write(data[10 * MIB :])
    sync.sync()
    sync.sync()  # steady since the last look: the tail goes too
    assert blob(store, "grow", "train.log") == data
    assert store.sent() == len(data)  # not a byte twice
    assert sync.sync(final=True) == 0 and store.sent() == len(data)  # unchanged: never again
    assert sync.bytes_sent == len(data)


def test_a_rewritten_block_is_the_only_one_sent_again(azurite: str, tmp_path: Path) -> None:
    store, sync, folder = make(azurite, tmp_path, "rewrite")
    data = bytearray(pattern(3 * BLOCK_BYTES))
    ckpt = folder / "model.bin"
    ckpt.write_bytes(data)
    assert sync.sync(final=True) == 1
    data[BLOCK_BYTES + 5 : BLOCK_BYTES + 9] = b"NEW!"
    ckpt.write_bytes(data)
    os.utime(ckpt, ns=(1, 2))  # a new modification time as well
    store.calls.clear()
    assert sync.sync(final=True) == 1
    assert store.calls == [("block", "sync/rewrite/outputs/out/model.bin", BLOCK_BYTES)]
    assert blob(store, "rewrite", "model.bin") == bytes(data)


def test_a_small_file_goes_whole_when_it_changed_and_never_when_it_did_not(
    azurite: str, tmp_path: Path
) -> None:
    store, sync, folder = make(azurite, tmp_path, "small")
    (folder / "metrics.json").write_text('{"step": 1}')
    (folder / "sub").mkdir()
    (folder / "sub" / "config.yml").write_text("lr: 0.1")
    assert sync.sync() == 2
    assert sync.sync() == 0 and len(store.calls) == 2
    (folder / "metrics.json").write_text('{"step": 2}')
    assert sync.sync() == 1
    names = [c[1].rsplit("/", 1)[1] for c in store.calls]
    assert sorted(names[:2]) == ["config.yml", "metrics.json"] and names[2:] == ["metrics.json"]
    assert store.calls[-1] == ("whole", "sync/small/outputs/out/metrics.json", len('{"step": 2}'))
    assert blob(store, "small", "metrics.json") == b'{"step": 2}'


def test_an_interrupted_sync_resumes_from_its_blocks_newest_file_first(azurite: str, tmp_path: Path) -> None:
    store, sync, folder = make(azurite, tmp_path, "notice")
    big = pattern(12 * BLOCK_BYTES)
    (folder / "dataset.bin").write_bytes(big)
    store.after_blocks = (2, sync.interrupt)  # a notice while the big file goes up
    assert sync.sync(final=False) == 0
    partial = store.sent("dataset.bin")
    assert BLOCK_BYTES * 2 <= partial < len(big)  # stopped early (blocks in flight finished)
    assert sync.sync() == 0 and store.sent() == partial  # interrupted: nothing until the final sync
    (folder / "last.ckpt").write_bytes(b"final weights")  # written on SIGTERM
    store.after_blocks = None
    calls_before = len(store.calls)
    assert sync.sync(final=True) == 2
    final = store.calls[calls_before:]
    assert final[0] == ("whole", "sync/notice/outputs/out/last.ckpt", len(b"final weights"))
    assert store.sent("dataset.bin") == len(big)  # the rest only: staged blocks not sent again
    assert blob(store, "notice", "dataset.bin") == big


def test_files_left_to_the_log_shipper_are_left_alone(azurite: str, tmp_path: Path) -> None:
    store, sync, folder = make(azurite, tmp_path, "skip", skip=lambda name, rel: rel.startswith("stdout-"))
    (folder / "stdout-wk-0.txt").write_text("a line")
    (folder / "train.log").write_text("mine")
    assert sync.sync(final=True) == 1
    assert [c[1] for c in store.calls] == ["sync/skip/outputs/out/train.log"]


@pytest.mark.parametrize("final", [False, True])
def test_a_file_removed_meanwhile_is_skipped(azurite: str, tmp_path: Path, final: bool) -> None:
    store, sync, folder = make(azurite, tmp_path, f"gone-{final}")
    old = folder / "step-1.ckpt"
    old.write_bytes(pattern(2 * BLOCK_BYTES))
    store.after_blocks = (1, lambda: old.unlink(missing_ok=True))
    sync.sync(final=final)
    store.after_blocks = None
    assert sync.sync(final=True) == 0


def test_a_file_of_whole_blocks_is_sent_on_the_first_look(azurite: str, tmp_path: Path) -> None:
    store, sync, folder = make(azurite, tmp_path, "whole")
    (folder / "model.bin").write_bytes(pattern(2 * BLOCK_BYTES))
    assert sync.sync() == 1  # no partial block to wait for
    store.calls.clear()
    assert sync.sync() == 0 and store.calls == []
