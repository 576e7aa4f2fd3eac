"""Moving a job's files between a machine and the store: the code snapshot, inputs,
outputs and datastore folders.

- Submit: `pack_code` (the `code:` folder as a tar.gz, without `.git`, `__pycache__` and
  what `.amlignore` / `.gitignore` exclude) and `upload_local_inputs` (local input files and
  folders, to `runs/<exp>/<id>/inputs/<name>/`).
- Node: `unpack_code`, `stage_inputs` (datastore paths from that datastore's container, local
  inputs from the run, https by download), `OutputSync` (in `jobrunner.output_sync`:
  outputs and the code folder's `./outputs`, `./logs` to `runs/<exp>/<id>/outputs/<name>/`,
  and to the datastore for `azureml://datastores/...` output paths; only what is new since
  the last sync, large files by the block); `OutputSync.restore` brings a run's synced
  outputs back for its next attempt.
- `jobrunner data`: `upload_tree`, `download_tree`, with a progress callback.

A datastore's container comes from `jobrunner.datastores.Datastores`: the agent config's
map on a deployed pool, else the container named after the datastore (`workspaceblobstore`
by default). Failure modes: StoreError from the store, NotFoundError for a datastore path
with nothing under it, LaunchError for a location a node cannot read, ConfigError for a
datastore name that maps to no container.
"""

from __future__ import annotations

import fnmatch
import io
import os
import tarfile
import threading
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TypeVar

from jobrunner.datastores import LOCAL, Datastores
from jobrunner.errors import LaunchError, NotFoundError
from jobrunner.output_sync import OutputSync, output_path
from jobrunner.spec import JobSpec
from jobrunner.status import RunRef
from jobrunner.store import RUNS, BlobInfo, Store

__all__ = ["OutputSync", "output_path"]  # the output side lives in jobrunner.output_sync


class StagingStopped(Exception):
    """Staging was asked to stop (a cancel, an eviction notice): not a failure of its own."""


Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
# Files in flight at once: one request at a time leaves the link and the store idle between
# small files (1,000 files of 1 MiB went at 0.6x the SDK's own threaded transfer).
TRANSFER_THREADS = 8
T = TypeVar("T")
R = TypeVar("R")
ALWAYS_EXCLUDED = (".git", "__pycache__", ".ipynb_checkpoints", ".venv", "node_modules")
IGNORE_FILES = (".amlignore", ".gitignore")


# ----------------------------------------------------------------- code snapshot
def _ignore_patterns(root: Path) -> list[str]:
    """Patterns from `.amlignore` (Azure ML's), else `.gitignore`, of the code folder's top."""
    for name in IGNORE_FILES:
        f = root / name
        if f.is_file():
            lines = (line.strip() for line in f.read_text(errors="replace").splitlines())
            return [line for line in lines if line and not line.startswith(("#", "!"))]
    return []


def _excluded(rel: PurePosixPath, patterns: list[str]) -> bool:
    if any(part in ALWAYS_EXCLUDED for part in rel.parts):
        return True
    for pattern in patterns:
        anchored = pattern.startswith("/")
        pat = pattern.strip("/")
        if anchored and fnmatch.fnmatch(str(rel), pat):
            return True
        if not anchored and (fnmatch.fnmatch(rel.name, pat) or fnmatch.fnmatch(str(rel), pat)):
            return True
    return False


def code_files(root: Path) -> list[Path]:
    """The files of a code folder that go into its snapshot, relative to `root`."""
    patterns = _ignore_patterns(root)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d for d in dirnames if not _excluded(PurePosixPath((base / d).as_posix()), patterns)
        )
        out.extend(
            base / f
            for f in sorted(filenames)
            if not _excluded(PurePosixPath((base / f).as_posix()), patterns)
        )
    return out


def pack_code(root: Path) -> bytes:
    """The code folder as a gzipped tar of `code_files(root)`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in code_files(root):
            tar.add(root / rel, arcname=rel.as_posix(), recursive=False)
    return buf.getvalue()


def unpack_code(data: bytes, dest: Path) -> None:
    """Extract a code snapshot into `dest` (links and paths outside `dest` are refused)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")


# ------------------------------------------------------------------ trees
def _local_files(path: Path) -> list[tuple[Path, str]]:
    """(file, relative posix name) for a file or every file under a folder."""
    if path.is_file():
        return [(path, path.name)]
    return sorted(
        (p, p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file() and not p.is_symlink()
    )


def _join(prefix: str, rel: str) -> str:
    return f"{prefix.strip('/')}/{rel}" if prefix.strip("/") else rel


def _each(items: Sequence[T], work: Callable[[T], R]) -> list[R]:
    """`work` on every item, TRANSFER_THREADS at a time; results in item order. The first
    failure is raised once the transfers already under way have ended; the rest are skipped."""
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(min(TRANSFER_THREADS, len(items)), thread_name_prefix="transfer") as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


class _Tally:
    """Bytes done over several concurrent transfers, reported to one `Progress` at a time."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self._total, self._progress = total, progress
        self._lock = threading.Lock()
        self._parts: dict[str, int] = {}
        self._done = 0

    def hook(self, key: str) -> Callable[[int], None] | None:
        return (lambda current: self.set(key, current)) if self._progress else None

    def set(self, key: str, current: int) -> None:
        if self._progress is None:
            return
        with self._lock:
            self._done += current - self._parts.get(key, 0)
            self._parts[key] = current
            self._progress(self._done, self._total)


def upload_tree(
    store: Store, container: str, source: Path, prefix: str, *, progress: Progress | None = None
) -> int:
    """Upload a file, or every file under a folder, to `container/prefix/...`; returns the file count."""
    files = [(path, rel, path.stat().st_size) for path, rel in _local_files(source)]
    tally = _Tally(sum(size for _, _, size in files), progress)

    def one(item: tuple[Path, str, int]) -> None:
        path, rel, size = item
        store.upload_file(container, _join(prefix, rel), path, progress=tally.hook(rel))
        tally.set(rel, size)

    _each(files, one)
    return len(files)


def download_tree(
    store: Store,
    container: str,
    prefix: str,
    dest: Path,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Download every blob under `container/prefix` into `dest` (keeping relative paths).

    A prefix naming one blob downloads that file into `dest`. NotFoundError when nothing is
    there; StagingStopped once `stop` is set (checked between files and as a blob arrives).
    """
    clean = prefix.strip("/")
    blobs = [
        b
        for b in store.list(container, clean)
        if b.name == clean or b.name.startswith(clean + "/") or not clean
    ]
    if not blobs:
        raise NotFoundError(
            f"nothing at {container}/{clean}",
            fix="check the datastore name and path (`jobrunner data upload`)",
        )
    tally = _Tally(sum(b.size for b in blobs), progress)
    todo = []
    for blob in blobs:
        rel = PurePosixPath(blob.name).name if blob.name == clean else blob.name[len(clean) :].lstrip("/")
        target = (dest / rel).resolve()
        if target.is_relative_to(dest.resolve()):  # a blob name with `..` must not write outside dest
            todo.append((blob, target))

    def one(item: tuple[BlobInfo, Path]) -> None:
        blob, target = item
        hook = tally.hook(blob.name)
        if stop is not None:
            if stop.is_set():
                raise StagingStopped(f"stopped before {blob.name}")
            hook = _stoppable(hook, stop)
        store.download_file(container, blob.name, target, progress=hook)
        tally.set(blob.name, blob.size)

    _each(todo, one)
    return len(blobs)


def _stoppable(hook: Callable[[int], None] | None, stop: threading.Event) -> Callable[[int], None]:
    """A progress hook that ends a transfer under way once `stop` is set."""

    def check(current: int) -> None:
        if stop.is_set():
            raise StagingStopped("stopped during a download")
        if hook is not None:
            hook(current)

    return check


# ------------------------------------------------------------------ submit side
def upload_local_inputs(store: Store, ref: RunRef, spec: JobSpec, progress: Progress | None = None) -> None:
    """Upload each local input of `spec` (files and folders) to the run's `inputs/<name>/`."""
    for name, data in spec.data_inputs.items():
        if data.location.kind == "local":
            upload_tree(store, RUNS, Path(data.location.path), ref.inputs_prefix(name), progress=progress)


# ------------------------------------------------------------------ node side
def stage_inputs(
    store: Store,
    ref: RunRef,
    spec: JobSpec,
    root: Path,
    datastores: Datastores = LOCAL,
    *,
    stop: threading.Event | None = None,
) -> dict[str, str]:
    """Bring every data input of `spec` under `root/<name>`; returns input name -> local path.

    `direct` inputs are not copied: the job gets the URI itself. Raises NotFoundError when a
    datastore path holds nothing, LaunchError for a location a node cannot read, ConfigError
    for a datastore `datastores` cannot place, StagingStopped once `stop` is set.
    """
    out: dict[str, str] = {}
    for name, data in spec.data_inputs.items():
        loc = data.location
        if data.mode == "direct":
            out[name] = data.path
            continue
        dest = root / name
        if loc.kind == "datastore":
            download_tree(*datastores.resolve(store, loc.store or ""), loc.path, dest, stop=stop)
        elif loc.kind == "local":
            download_tree(store, RUNS, ref.inputs_prefix(name), dest, stop=stop)
        elif loc.kind == "https":
            dest.mkdir(parents=True, exist_ok=True)
            filename = PurePosixPath(loc.url or "").name or "download"
            try:
                urllib.request.urlretrieve(loc.url or "", dest / filename)  # noqa: S310 - https by design
            except OSError as exc:
                raise LaunchError(f"inputs.{name}: cannot download {loc.url}: {exc}") from None
        else:
            raise LaunchError(
                f"inputs.{name}: {data.path} is on another storage account, which this pool cannot read",
                fix="copy it to a datastore of the pool's store and use azureml://datastores/<d>/paths/<p>",
            )
        out[name] = str(_single_file(dest) if data.type == "uri_file" else dest)
    return out


def _single_file(folder: Path) -> Path:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return files[0] if len(files) == 1 else folder
