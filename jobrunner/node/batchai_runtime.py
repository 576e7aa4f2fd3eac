"""Batch AI's layout on a pool node, so that scripts written for Batch AI find their files.

- Mounts: Batch AI mounted each file share, container or file server at
  `$AZ_BATCHAI_JOB_MOUNT_ROOT/<relativeMountPath>` (`$AZ_BATCHAI_MOUNT_ROOT/...` for the
  cluster's). A pool stages data per job instead, so `link_mounts` makes
  `<mount root>/<datastore>/<path>` a symbolic link to where each datastore input or output
  of the job was staged: `$AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/train.py` is the staged copy of
  `azureml://datastores/scripts/paths/train.py`. `trainstack migrate batchai` names each
  datastore after its mount's `relativeMountPath`, so a converted job's paths line up.
- Logs: `BatchAiLogFiles` writes each process's stdout and stderr again under Batch AI's names
  (`stdout-wk-0.txt`, `stderr-wk-0.txt`, ...) into `$AZ_BATCHAI_STDOUTERR_DIR`, the job's
  `./logs`, by the chunk as they come from the pipes, for the job and the node. In the store
  they are a view, never a copy: beside each process's merged log blob the agent ships a
  small stream index (`<log>.streams`: a line `stdout <offset>` or `stderr <offset>` where
  the merged log switches stream, `StreamIndex`), and `batchai_log_views` cuts the merged
  blobs of every attempt into Batch AI's files when the outputs are downloaded (`jobrunner
  outputs`). The output sync leaves the local files alone (`BATCHAI_LOG_FILE`).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import IO

from jobrunner.api import NodePaths
from jobrunner.errors import LaunchError, NotFoundError
from jobrunner.node.isolation import confined, open_no_follow
from jobrunner.node.logship import LogShipper
from jobrunner.node.staging import output_path
from jobrunner.plan.environment import shared_job_temp
from jobrunner.spec.job import JobSpec
from jobrunner.spec.uri import parse_data_uri
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import RunRef


def mount_links(spec: JobSpec, paths: NodePaths, run_id: str) -> list[tuple[str, str]]:
    """(link, staged path) for every datastore input and output of `spec`, shortest link first.

    Outputs use their path for run `run_id` (`${{name}}` filled in). Inputs passed `direct`
    and outputs without a datastore path have no link. Pure: nothing is touched. LaunchError
    for a link that would leave the mount root.
    """
    root = paths.mounts or paths.root
    links: list[tuple[str, str]] = []
    for name, data in spec.data_inputs.items():
        staged = paths.inputs.get(name)
        if data.mode != "direct" and data.location.kind == "datastore" and staged:
            links.append((_under(root, data.location.store or "", data.location.path), staged))
    for name, out in spec.outputs.items():
        staged = paths.outputs.get(name)
        if out.path and staged:
            loc = parse_data_uri(output_path(out.path, run_id, name))
            links.append((_under(root, loc.store or "", loc.path), staged))
    return sorted(links, key=lambda link: (link[0].count("/"), link[0]))


def _under(root: str, store: str, path: str) -> str:
    """`root/store/path`; LaunchError when it would leave `root` (a link made there outlives
    the attempt and points anywhere)."""
    return confined(root, store, *[p for p in path.split("/") if p], what="mount link")


def link_mounts(spec: JobSpec, paths: NodePaths, run_id: str) -> list[str]:
    """Create the mount root, Batch AI's shared job temp folder and the links of `mount_links`;
    returns the links made.

    A link whose place already exists is skipped: a shorter link covers it (an input of a
    whole datastore holds its sub-folders) or the staged data has a folder there. Raises
    LaunchError when a link cannot be made (a file where a folder must go, a read-only disk).
    """
    made: list[str] = []
    try:
        Path(paths.mounts or paths.root).mkdir(parents=True, exist_ok=True)
        Path(shared_job_temp(paths)).mkdir(parents=True, exist_ok=True)
        for link, target in mount_links(spec, paths, run_id):
            place = Path(link)
            if place.exists() or place.is_symlink():
                continue
            place.parent.mkdir(parents=True, exist_ok=True)
            place.symlink_to(target, target_is_directory=Path(target).is_dir())
            made.append(link)
    except OSError as exc:
        raise LaunchError(
            f"cannot lay out Batch AI's mount root: {exc}", fix="check the agent's work folder"
        ) from None
    return made


# The process log names `jobrunner.plan.launch_plan` gives: `node-<r>`, `node-<r>.worker-<i>`,
# `node-<r>.ps-<i>`, `node-<r>.mpirun`; the preparation (`node-<r>.preparation`) has none.
_LOG_NAME = re.compile(r"^node-(?P<node>\d+)(?:\.(?P<role>worker|ps)-(?P<index>\d+)|\.mpirun)?$")


def batchai_log_id(log_name: str) -> str | None:
    """Batch AI's `<role>-<index>` for a process: `wk-<i>` for TensorFlow worker i, `ps-<i>` for
    parameter server i, `wk-<node rank>` for a node's process (one command, torchrun, mpirun).
    None for the preparation and for names `jobrunner.plan.launch_plan` does not give."""
    m = _LOG_NAME.match(log_name)
    if m is None:
        return None
    if m["role"] == "ps":
        return f"ps-{m['index']}"
    return f"wk-{m['index'] if m['role'] else m['node']}"


BATCHAI_LOG_FILE = re.compile(r"^std(?:out|err)-(?:wk|ps)-\d+\.txt$")  # a name BatchAiLogFiles writes


class BatchAiLogFiles:
    """`stdout-<id>.txt` and `stderr-<id>.txt` per process in `folder`, written as chunks come.

    A `jobrunner.node.launch.LogSink`; `close()` closes them. A file that cannot be opened is left
    out rather than stopping the job (the merged log still has every byte).
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._files: dict[tuple[str, str], IO[bytes] | None] = {}

    def __call__(self, log_name: str, stream: str, data: bytes) -> None:
        if not data:
            return
        key = (log_name, stream)
        f = self._files[key] if key in self._files else self._open(*key)
        if f is not None:
            f.write(data)

    def _open(self, log_name: str, stream: str) -> IO[bytes] | None:
        ident = batchai_log_id(log_name)
        f: IO[bytes] | None = None
        if ident is not None and stream in ("stdout", "stderr"):
            try:
                self._folder.mkdir(parents=True, exist_ok=True)
                # ./logs is the job's: a link it left there must not make the agent write elsewhere
                fd = open_no_follow(
                    self._folder / f"{stream}-{ident}.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT
                )
                f = os.fdopen(fd, "ab", buffering=0)
            except OSError:
                f = None
        self._files[(log_name, stream)] = f
        return f

    def close(self) -> None:
        for f in self._files.values():
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        self._files.clear()

    def __enter__(self) -> BatchAiLogFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STREAMS_SUFFIX = ".streams"


class StreamIndex:
    """A `jobrunner.node.launch.LogSink` that notes, per process with a Batch AI name, where its
    merged log switches between stdout and stderr: a line `<stream> <offset>` in the log
    stream `<log>.streams` of `shipper` (shipped beside `<log>.txt` under `prefix`). Call it
    for each chunk just before the chunk goes into the merged log. A job writing only stdout
    costs one line; one alternating every line, about 15 bytes a switch."""

    def __init__(self, shipper: LogShipper, spool: Path, prefix: str) -> None:
        self._shipper, self._spool, self._prefix = shipper, spool, prefix
        self._logs: dict[str, _Switches | None] = {}  # None: a log without a Batch AI name

    def __call__(self, log_name: str, stream: str, data: bytes) -> None:
        if not data:
            return
        switches = self._logs[log_name] if log_name in self._logs else self._open(log_name)
        if switches is None:
            return
        if stream != switches.stream:
            self._shipper.write_chunk(switches.key, f"{stream} {switches.length}\n".encode())
            switches.stream = stream
        switches.length += len(data)

    def _open(self, log_name: str) -> _Switches | None:
        switches = None
        if batchai_log_id(log_name) is not None:
            key = f"{log_name}{STREAMS_SUFFIX}"
            self._shipper.open_stream(key, self._spool / key, f"{self._prefix}{key}")
            switches = _Switches(key)
        self._logs[log_name] = switches
        return switches


class _Switches:
    """Where one process's merged log stands: the stream of its last chunk and its length."""

    __slots__ = ("key", "length", "stream")

    def __init__(self, key: str) -> None:
        self.key, self.stream, self.length = key, "", 0


def batchai_log_views(store: Store, ref: RunRef) -> dict[str, bytes]:
    """Batch AI's `stdout-<id>.txt` / `stderr-<id>.txt` of run `ref`, cut from the merged log
    blobs of every attempt (in attempt order) by their stream indexes. StoreError when the
    store fails; a merged log without its index (or the other way round) is left out."""
    views: dict[str, bytearray] = {}
    logs = ref.blob("logs/")
    indexes = [b.name for b in store.list(RUNS, logs) if b.name.endswith(STREAMS_SUFFIX)]

    def order(name: str) -> tuple[int, str]:
        attempt, _, log = name.removeprefix(logs).partition("/")
        return (int(attempt) if attempt.isdigit() else 0, log)

    for index in sorted(indexes, key=order):
        ident = batchai_log_id(order(index)[1].removesuffix(STREAMS_SUFFIX))
        try:
            marks, _ = store.get(RUNS, index)
            merged, _ = store.get(RUNS, index.removesuffix(STREAMS_SUFFIX) + ".txt")
        except NotFoundError:
            continue
        switches = [
            (stream, int(at)) for stream, _, at in (m.partition(" ") for m in marks.decode().split("\n") if m)
        ]
        ends = [at for _, at in switches[1:]] + [len(merged)]
        for (stream, start), end in zip(switches, ends, strict=True):
            views.setdefault(f"{stream}-{ident}.txt", bytearray()).extend(merged[start:end])
    return {name: bytes(data) for name, data in views.items()}
