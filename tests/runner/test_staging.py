"""Code snapshots leave out what a run does not need; trees round-trip through a datastore."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.errors import NotFoundError
from jobrunner.staging import code_files, download_tree, pack_code, unpack_code, upload_tree
from jobrunner.store import Store


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
