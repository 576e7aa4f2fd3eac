"""Moving a job's files between a machine and the store: the code snapshot, inputs,
outputs and datastore folders.

- Submit: `pack_code` (the `code:` folder as a tar.gz, without `.git`, `__pycache__` and
  what `.amlignore` / `.gitignore` exclude) and `upload_local_inputs` (local input files and
  folders, to `runs/<exp>/<id>/inputs/<name>/`).
- Node: `unpack_code`, `stage_inputs` (datastore paths from that datastore's container, local
  inputs from the run, https by download), `OutputSync` (in `jobrunner.node.output_sync`:
  outputs and the code folder's `./outputs`, `./logs` to `runs/<exp>/<id>/outputs/<name>/`,
  and to the datastore for `azureml://datastores/...` output paths; only what is new since
  the last sync, large files by the block); `OutputSync.restore` brings a run's synced
  outputs back for its next attempt.
- `jobrunner data`: `upload_tree`, `download_tree`, with a progress callback.

A datastore's container comes from `jobrunner.store.datastores.Datastores`: the agent config's
map on a deployed pool, else the container named after the datastore (`workspaceblobstore`
by default). Failure modes: StoreError from the store, NotFoundError for a datastore path
with nothing under it, LaunchError for a location a node cannot read, ConfigError for a
datastore name that maps to no container.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import os
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import pathspec

from jobrunner.errors import ConfigError, LaunchError, NotFoundError
from jobrunner.node.isolation import confined
from jobrunner.node.output_sync import OutputSync, output_path
from jobrunner.spec.job import JobSpec
from jobrunner.store.client import RUNS, BlobInfo, Store
from jobrunner.store.datastores import LOCAL, Datastores
from jobrunner.store.status import RunRef

__all__ = ["OutputSync", "output_path"]  # the output side lives in jobrunner.node.output_sync

log = logging.getLogger(__name__)


class StagingStopped(Exception):
    """Staging was asked to stop (a cancel, an eviction notice): not a failure of its own."""


Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
# Files in flight at once: one request at a time leaves the link and the store idle between
# small files (1,000 files of 1 MiB went at 0.6x the SDK's own threaded transfer).
TRANSFER_THREADS = 8
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class HttpLimits:
    """Bounds of an http(s) input's download."""

    connect_s: float = 10.0
    read_s: float = 60.0  # the longest silence mid-download
    max_bytes: int = 10 * 1024**3


ALWAYS_EXCLUDED = (".git", "__pycache__", ".ipynb_checkpoints", ".venv", "node_modules")
IGNORE_FILES = (".amlignore", ".gitignore")


# ----------------------------------------------------------------- code snapshot
def _ignore_spec(root: Path) -> pathspec.GitIgnoreSpec:
    """`.amlignore` (Azure ML's), else `.gitignore`, of the code folder's top, as git reads it
    (`!keep.log`, `dir/` only for folders, `a/**/b`)."""
    for name in IGNORE_FILES:
        f = root / name
        if f.is_file():
            return pathspec.GitIgnoreSpec.from_lines(f.read_text(errors="replace").splitlines())
    return pathspec.GitIgnoreSpec.from_lines([])


def _excluded(rel: PurePosixPath, spec: pathspec.GitIgnoreSpec, *, folder: bool) -> bool:
    if any(part in ALWAYS_EXCLUDED for part in rel.parts):
        return True
    return spec.match_file(f"{rel}/" if folder else str(rel))


def _check_link(root: Path, rel: Path) -> None:
    """A link in the snapshot must point inside the code folder: on the node, an absolute one
    (`data -> /mnt/datasets`) or one that climbs out names something the job's node may not
    have, and the snapshot is unpacked with such links refused."""
    target = os.readlink(root / rel)
    inside = (root / rel).parent.joinpath(target).resolve(strict=False)
    if os.path.isabs(target) or not inside.is_relative_to(root.resolve()):
        raise ConfigError(
            f"code: {root / rel} is a link to {target}, outside the code folder",
            fix="declare that location as an input (`inputs: {data: {type: uri_folder, path: ...}}`) "
            "or list the link in .amlignore",
        )


def code_files(root: Path) -> list[Path]:
    """The files (and links inside the folder) that go into `root`'s snapshot, relative to it.

    ConfigError naming the link when one points outside the code folder."""
    spec = _ignore_spec(root)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root)
        kept = [d for d in dirnames if not _excluded(PurePosixPath((base / d).as_posix()), spec, folder=True)]
        linked = sorted(d for d in kept if (root / base / d).is_symlink())  # os.walk does not enter them
        dirnames[:] = sorted(d for d in kept if d not in linked)
        files = [
            f for f in filenames if not _excluded(PurePosixPath((base / f).as_posix()), spec, folder=False)
        ]
        for name in sorted([*files, *linked]):
            if (root / base / name).is_symlink():
                _check_link(root, base / name)
            out.append(base / name)
    return out


def pack_code(root: Path) -> bytes:
    """The code folder as a gzipped tar of `code_files(root)` (links stay links)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in code_files(root):
            tar.add(root / rel, arcname=rel.as_posix(), recursive=False)
    return buf.getvalue()


def unpack_code(data: bytes, dest: Path) -> None:
    """Extract a code snapshot into `dest`. ConfigError (the job's own files) for a link or a
    path that leads outside `dest`, or a snapshot that is not a tar.gz."""
    dest.mkdir(parents=True, exist_ok=True)
    log.debug("code: unpacking a %d-byte snapshot into %s", len(data), dest)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError) as exc:
        raise ConfigError(
            f"code: the snapshot cannot be unpacked on this node: {exc}",
            fix="keep links in the code folder relative and inside it; submit again",
        ) from None


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
    there; ConfigError when a blob's name is also the folder of others (`a` and `a/b`);
    StagingStopped once `stop` is set (checked between files and as a blob arrives).
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
    names = {b.name for b in blobs}
    for blob in blobs:
        if any(n.startswith(blob.name + "/") for n in names):
            # a file system cannot hold a file `a` and a folder `a/` at once
            raise ConfigError(
                f"{container}/{blob.name} is a blob and also a folder of other blobs ({blob.name}/...)",
                fix=f"rename or remove the blob {blob.name}, or download a path below it",
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
            log.debug("%s inputs.%s: mode direct, the job reads %s itself", ref.id, name, loc.kind)
            out[name] = data.path
            continue
        dest = Path(confined(root, name, what=f"inputs.{name}"))
        if loc.kind == "datastore":
            store_of, container = datastores.resolve(store, loc.store or "")
            count = download_tree(store_of, container, loc.path, dest, stop=stop)
            log.info(
                "%s inputs.%s: %d file(s) from datastore %s (%s/%s)",
                ref.id, name, count, loc.store, container, loc.path.strip("/"),
            )  # fmt: skip
        elif loc.kind == "local":
            count = download_tree(store, RUNS, ref.inputs_prefix(name), dest, stop=stop)
            log.info("%s inputs.%s: %d file(s) uploaded at submit", ref.id, name, count)
        elif loc.kind == "https":
            got = download_url(loc.url or "", dest, field=f"inputs.{name}")
            log.info(
                "%s inputs.%s: %d bytes from %s", ref.id, name, got.stat().st_size, _shown(loc.url or "")
            )
        else:
            raise LaunchError(
                f"inputs.{name}: {data.path} is on another storage account, which this pool cannot read",
                fix="copy it to a datastore of the pool's store and use azureml://datastores/<d>/paths/<p>",
            )
        out[name] = str(_single_file(dest) if data.type == "uri_file" else dest)
    return out


def download_url(url: str, dest: Path, *, field: str, limits: HttpLimits | None = None) -> Path:
    """Download an http(s) input into `dest`, bounded: a server that does not answer within
    `connect_s`, stalls for `read_s` mid-body or sends less than it announced is LaunchError
    (this node's or the network's trouble); a 4xx answer or more than `max_bytes` is
    ConfigError (the job's input). Both name the field, the URL without its query string (a
    SAS token stays out of the status) and the cause; a partial file is removed."""
    limits = limits or HttpLimits()
    shown = _shown(url)
    log.debug("%s: downloading %s (connect %g s, stall %g s)", field, shown, limits.connect_s, limits.read_s)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / (PurePosixPath(urllib.parse.urlsplit(url).path).name or "download")
    try:
        # connect_s bounds the connection and the response's headers; then read_s each read
        with urllib.request.urlopen(url, timeout=limits.connect_s) as response, open(target, "wb") as out:  # noqa: S310
            with contextlib.suppress(AttributeError):  # the socket under http.client's response
                response.fp.raw._sock.settimeout(limits.read_s)
            size = 0
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > limits.max_bytes:
                    raise ConfigError(
                        f"{field}: {shown} is larger than {limits.max_bytes} bytes",
                        fix="copy it to a datastore and use azureml://datastores/<d>/paths/<p>",
                    )
                out.write(chunk)
            if response.length:  # the server closed before the Content-Length it announced
                raise LaunchError(f"{field}: {shown} ended after {size} of {size + response.length} bytes")
    except (LaunchError, ConfigError):
        target.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as exc:
        target.unlink(missing_ok=True)
        if 400 <= exc.code < 500:  # the job's URL is wrong (missing, forbidden): the user's to fix
            raise ConfigError(f"{field}: cannot download {shown}: {exc}", fix="check the URL") from None
        raise LaunchError(f"{field}: cannot download {shown}: {exc}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        target.unlink(missing_ok=True)
        timed_out = isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)
        cause = (
            f"no answer within {limits.connect_s:g} s or a stall of {limits.read_s:g} s"
            if timed_out
            else str(exc)
        )
        raise LaunchError(f"{field}: cannot download {shown}: {cause}") from None
    return target


def _shown(url: str) -> str:
    """The URL as messages and logs show it: without its query string (a SAS token)."""
    return urllib.parse.urlsplit(url)._replace(query="", fragment="").geturl()


def _single_file(folder: Path) -> Path:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return files[0] if len(files) == 1 else folder
