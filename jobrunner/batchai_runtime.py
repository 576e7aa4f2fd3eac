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
  `./logs`, by the chunk as they come from the pipes. With a `LogShipper` the files are its
  streams: appended to the run's `outputs/logs/` blobs like any log, each byte once (the
  output sync leaves them alone, `BATCHAI_LOG_FILE`), so `jobrunner outputs` finds them
  beside the job's own `./logs`; the agent's merged log per process is unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO

from jobrunner.api import NodePaths
from jobrunner.errors import LaunchError
from jobrunner.logship import LogShipper
from jobrunner.plan_env import shared_job_temp
from jobrunner.spec import JobSpec
from jobrunner.spec_uri import parse_data_uri
from jobrunner.staging import output_path


def mount_links(spec: JobSpec, paths: NodePaths, run_id: str) -> list[tuple[str, str]]:
    """(link, staged path) for every datastore input and output of `spec`, shortest link first.

    Outputs use their path for run `run_id` (`${{name}}` filled in). Inputs passed `direct`
    and outputs without a datastore path have no link. Pure: nothing is touched.
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
    return posixpath.join(root, store, *[p for p in path.split("/") if p])


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


# The process log names `jobrunner.plan` gives: `node-<r>`, `node-<r>.worker-<i>`,
# `node-<r>.ps-<i>`, `node-<r>.mpirun`; the preparation (`node-<r>.preparation`) has none.
_LOG_NAME = re.compile(r"^node-(?P<node>\d+)(?:\.(?P<role>worker|ps)-(?P<index>\d+)|\.mpirun)?$")


def batchai_log_id(log_name: str) -> str | None:
    """Batch AI's `<role>-<index>` for a process: `wk-<i>` for TensorFlow worker i, `ps-<i>` for
    parameter server i, `wk-<node rank>` for a node's process (one command, torchrun, mpirun).
    None for the preparation and for names `jobrunner.plan` does not give."""
    m = _LOG_NAME.match(log_name)
    if m is None:
        return None
    if m["role"] == "ps":
        return f"ps-{m['index']}"
    return f"wk-{m['index'] if m['role'] else m['node']}"


BATCHAI_LOG_FILE = re.compile(r"^std(?:out|err)-(?:wk|ps)-\d+\.txt$")  # a name BatchAiLogFiles writes


class BatchAiLogFiles:
    """`stdout-<id>.txt` and `stderr-<id>.txt` per process in `folder`, written as chunks come.

    A `jobrunner.launch.LogSink`. Given `shipper`, each file is a stream of it, shipped to
    `blob_prefix + name` (appended, resumed where an earlier attempt's blob ends: `folder`
    then holds that attempt's files, restored); alone, it only writes the files. `close()`
    closes them. A file that cannot be opened is left out rather than stopping the job (the
    merged log still has every byte).
    """

    def __init__(self, folder: Path, shipper: LogShipper | None = None, blob_prefix: str = "") -> None:
        self._folder = folder
        self._shipper = shipper
        self._blob_prefix = blob_prefix
        self._writers: dict[tuple[str, str], Callable[[bytes], None] | None] = {}
        self._files: list[IO[bytes]] = []

    def __call__(self, log_name: str, stream: str, data: bytes) -> None:
        if not data:
            return
        key = (log_name, stream)
        writer = self._writers.get(key) if key in self._writers else self._open(*key)
        if writer is not None:
            writer(data)

    def _open(self, log_name: str, stream: str) -> Callable[[bytes], None] | None:
        ident = batchai_log_id(log_name)
        writer: Callable[[bytes], None] | None = None
        if ident is not None and stream in ("stdout", "stderr"):
            name = f"{stream}-{ident}.txt"
            try:
                if self._shipper is not None:
                    key = f"batchai/{name}"
                    self._shipper.open_stream(key, self._folder / name, self._blob_prefix + name, resume=True)
                    writer = functools.partial(self._shipper.write_chunk, key)
                else:
                    self._folder.mkdir(parents=True, exist_ok=True)
                    f = open(self._folder / name, "ab", buffering=0)  # noqa: SIM115
                    self._files.append(f)
                    writer = f.write
            except OSError:
                writer = None
        self._writers[(log_name, stream)] = writer
        return writer

    def close(self) -> None:
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        self._files.clear()
        self._writers.clear()

    def __enter__(self) -> BatchAiLogFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
