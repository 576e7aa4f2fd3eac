"""Uploading a node's output folders while the job runs, sending only what is new.

    sync = OutputSync(store, ref, spec, {"checkpoints": folder, ...}, datastores)
    sync.sync()              every few seconds, on the attempt's sync worker
    sync.interrupt()         a notice came: the sync under way stops at its next block
    sync.sync(final=True)    once the job has stopped: everything, newest file first

What goes up, and how:

- A file whose size and modification time are what the last sync sent is not read or sent
  again (`restore`d files count as sent).
- A file of at most `BLOCK_BYTES` goes up whole when it changed.
- A larger file goes up as blocks of `BLOCK_BYTES` (a block blob's block list): each block's
  digest is kept per target, and a sync stages only the blocks whose content is new, then
  commits the list. A growing file (a log, a checkpoint being written) sends each byte once;
  a rewritten one sends only the blocks that differ. While a file still grows between two
  looks, its last, partial block waits: it goes up once the file is steady, and always in
  the final sync.
- `interrupt()` makes a sync under way stop before its next block, keeping what it staged:
  the final sync then starts at once (a Preempt must not wait for a 1 GiB upload) and sends
  the newest files first (the job's last checkpoint, written on SIGTERM), then resumes the
  rest from the blocks already staged.

Failure modes: StoreError from the store (nothing is marked sent that did not arrive: the
next sync sends it), a file removed while it is read is skipped (an old checkpoint the job
deleted).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from jobrunner.errors import NotFoundError
from jobrunner.spec.expressions import render_output_path
from jobrunner.spec.job import JobSpec
from jobrunner.spec.uri import parse_data_uri
from jobrunner.store.client import BLOB_CONNECTIONS, DEFAULT_DATASTORE, RUNS, Store
from jobrunner.store.datastores import LOCAL, Datastores
from jobrunner.store.status import RunRef

BLOCK_BYTES = 4 * 1024 * 1024  # 50,000 blocks (the service's limit) make 195 GiB per file
Target = tuple[Store, str, str]  # (store, container, prefix)
Skip = Callable[[str, str], bool]  # (output name, relative path) -> leave it alone

log = logging.getLogger(__name__)


def output_path(declared: str, run_id: str, output: str) -> str:
    """An output's datastore URI for run `run_id`: Azure ML's `${{name}}` is the run's id, so
    a rerun writes beside the last run's outputs rather than over them."""
    return render_output_path(
        declared, job_name=run_id, output_name=output, default_datastore=DEFAULT_DATASTORE
    )


class _Interrupted(Exception):
    pass


@dataclass
class _Held:
    """What one target holds of one file: its committed block ids, and blocks staged since."""

    blocks: list[str] = field(default_factory=list)
    staged: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _File:
    name: str  # the output's name
    path: Path
    rel: str
    targets: list[Target]
    size: int
    mtime_ns: int


class OutputSync:
    """Uploads a node's output folders; each `sync()` sends only what is new (module docstring)."""

    def __init__(
        self,
        store: Store,
        ref: RunRef,
        spec: JobSpec,
        folders: dict[str, Path],
        datastores: Datastores = LOCAL,
        *,
        skip: Skip | None = None,
    ) -> None:
        """`folders`: output name -> local folder (the job's outputs, plus `outputs`/`logs` of its
        code). `skip`: files another part of the agent uploads (Batch AI's log files, appended
        as logs). ConfigError when an output's datastore maps to no container."""
        self._store = store
        self._run = ref.id
        self._skip = skip or (lambda _name, _rel: False)
        self._folders: list[tuple[str, Path, list[Target]]] = []
        for name, folder in folders.items():
            targets: list[Target] = [(store, RUNS, ref.outputs_prefix(name))]
            declared = spec.outputs.get(name)
            if declared is not None and declared.path:
                loc = parse_data_uri(output_path(declared.path, ref.id, name))  # validated at submit
                targets.append((*datastores.resolve(store, loc.store or ""), loc.path))
            self._folders.append((name, folder, targets))
        self._sent: dict[Path, tuple[int, int]] = {}  # (size, mtime) that went up whole
        self._looked: dict[Path, tuple[int, int]] = {}  # (size, mtime) at the last look
        self._held: dict[tuple[int, Path], _Held] = {}  # (target index, file) -> blocks there
        self._lock = threading.Lock()  # one sync at a time
        self._interrupted = threading.Event()
        self._count_lock = threading.Lock()
        self.bytes_sent = 0  # bytes of file content sent to the store, for the record

    def interrupt(self) -> None:
        """Make a sync under way stop before its next block (and later ones do nothing) until
        the final sync; what it staged is kept for that one."""
        if not self._interrupted.is_set():
            log.info("%s outputs: the sync under way stops at its next block", self._run)
        self._interrupted.set()

    def restore(self) -> int:
        """Download what earlier attempts synced into the folders (a resumed job finds its
        checkpoints); returns the file count. These files count as sent. StoreError when the
        store fails."""
        from jobrunner.node.staging import download_tree  # staging re-exports this module

        count = 0
        with self._lock:
            for _name, folder, targets in self._folders:
                try:
                    count += download_tree(self._store, RUNS, targets[0][2], folder)
                except NotFoundError:
                    continue  # nothing synced yet for this output
                for path, _ in _files(folder):
                    stat = path.stat()
                    self._sent[path] = self._looked[path] = (stat.st_size, stat.st_mtime_ns)
        if count:
            log.info("%s outputs: %d file(s) of earlier attempts restored", self._run, count)
        return count

    def sync(self, *, final: bool = False) -> int:
        """Upload what is new; returns how many files are now all in the store. `final`: the
        job has stopped: partial blocks too, and newest files first. StoreError when the
        store fails."""
        if final:
            self._interrupted.clear()
        with self._lock:
            files = self._changed()
            if final:
                files.sort(key=lambda f: f.mtime_ns, reverse=True)
            done = 0
            with ThreadPoolExecutor(BLOB_CONNECTIONS, thread_name_prefix="output-sync") as pool:
                small: list[tuple[_File, Future[bool]]] = []
                try:
                    for f in files:
                        if self._interrupted.is_set():
                            break
                        if f.size <= BLOCK_BYTES:
                            small.append((f, pool.submit(self._send_whole, f)))
                        elif self._send_blocks(pool, f, final):
                            done += 1
                finally:
                    # the small files under way finish (or fail) before this returns
                    results = [(f, fut.exception() or fut.result()) for f, fut in small]
                for _f, outcome in results:
                    if isinstance(outcome, BaseException):
                        raise outcome
                    done += bool(outcome)
            if final or files:
                log.log(
                    logging.INFO if final else logging.DEBUG,
                    "%s outputs: %s sync, %d of %d changed file(s) now whole in the store, %d bytes sent",
                    self._run, "final" if final else "periodic", done, len(files), self.bytes_sent,
                )  # fmt: skip
            return done

    def _changed(self) -> list[_File]:
        out = []
        for name, folder, targets in self._folders:
            if not folder.exists():
                continue
            for path, rel in _files(folder):
                if self._skip(name, rel):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                if self._sent.get(path) != (stat.st_size, stat.st_mtime_ns):
                    out.append(_File(name, path, rel, targets, stat.st_size, stat.st_mtime_ns))
        return out

    def _count(self, n: int) -> None:
        with self._count_lock:
            self.bytes_sent += n

    def _send_whole(self, f: _File) -> bool:
        try:
            for target, container, prefix in f.targets:
                # the job may swap a file for a link to a root-only file: never follow it
                target.upload_file(container, _join(prefix, f.rel), f.path, follow_links=False)
                self._count(f.size)
            stat = f.path.stat()
        except FileNotFoundError:
            return False  # the job removed it meanwhile: nothing to keep
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                log.info("%s outputs.%s: %s is a link, not uploaded", self._run, f.name, f.rel)
                return False  # a link now stands there: links are never outputs
            raise
        self._sent[f.path] = self._looked[f.path] = (stat.st_size, stat.st_mtime_ns)
        for i in range(len(f.targets)):
            self._held.pop((i, f.path), None)  # a whole upload replaced any block list
        return True

    def _send_blocks(self, pool: ThreadPoolExecutor, f: _File, final: bool) -> bool:
        """Stage the new blocks of `f` and commit its list at every target; True when the
        whole file is now there (False: its growing tail waits for a later sync)."""
        now = (f.size, f.mtime_ns)
        steady = self._looked.get(f.path) == now
        self._looked[f.path] = now
        whole = final or steady
        held = [self._held.setdefault((i, f.path), _Held()) for i in range(len(f.targets))]
        ids: list[str] = []
        inflight: list[Future[None]] = []
        try:
            # never through a link the job may have put there (see _send_whole)
            with os.fdopen(os.open(f.path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as src:
                for index in range(-(-f.size // BLOCK_BYTES)):
                    if self._interrupted.is_set():
                        raise _Interrupted
                    data = src.read(BLOCK_BYTES)
                    if not data or (len(data) < BLOCK_BYTES and not whole):
                        break  # the growing tail: next time
                    block_id = f"{index:06d}-{hashlib.sha1(data, usedforsecurity=False).hexdigest()}"
                    ids.append(block_id)
                    for target, there in zip(f.targets, held, strict=True):
                        if block_id not in there.staged and block_id not in there.blocks:
                            inflight.append(pool.submit(self._stage, target, f.rel, block_id, data, there))
                    while len(inflight) > BLOB_CONNECTIONS:  # bounded memory: blocks read ahead
                        # as soon as any block is in, not the oldest: one slow request must
                        # not leave the other connections idle
                        finished, pending = wait(inflight, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            fut.result()
                        inflight = list(pending)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                log.info("%s outputs.%s: %s is a link, not uploaded", self._run, f.name, f.rel)
                return False
            raise
        except _Interrupted:
            for fut in inflight:
                fut.result()
            return False
        finally:
            for fut in inflight:
                fut.exception()  # wait: a block is counted staged only once it arrived
        for fut in inflight:
            fut.result()
        for i, (store, container, prefix) in enumerate(f.targets):
            if ids != held[i].blocks:
                store.commit_blocks(container, _join(prefix, f.rel), ids)
                held[i].blocks, held[i].staged = ids, set()
        if len(ids) * BLOCK_BYTES >= f.size:  # no tail left for later
            self._sent[f.path] = now
            return True
        return False

    def _stage(self, target: Target, rel: str, block_id: str, data: bytes, held: _Held) -> None:
        store, container, prefix = target
        store.stage_block(container, _join(prefix, rel), block_id, data)
        self._count(len(data))
        held.staged.add(block_id)


def _join(prefix: str, rel: str) -> str:
    return f"{prefix.strip('/')}/{rel}" if prefix.strip("/") else rel


def _files(folder: Path) -> list[tuple[Path, str]]:
    """(file, relative posix name) of every regular file under `folder` (links left out)."""
    return sorted(
        (p, p.relative_to(folder).as_posix()) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
    )
