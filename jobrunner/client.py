"""The Python API of the job runner, for notebooks and for the `jobrunner` commands.

    from jobrunner import Client
    client = Client()                      # JOBRUNNER_STORE, else the local Azurite
    run = client.submit("job.yml", overrides={"inputs.epochs": "3"})
    client.wait(run.id, show_output=True)  # streams logs, returns the final status
    client.download_outputs(run.id, "out/")

Errors are typed (`jobrunner.errors`): JobSpecError for a job file that cannot run on the
pool (too many nodes included), NotFoundError for an unknown run id, StoreError when the store
cannot be reached.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jobrunner.api import JobState
from jobrunner.errors import ConflictError, JobSpecError, NotFoundError, Problem
from jobrunner.local.pool import doorbell_folder
from jobrunner.node.batchai_runtime import batchai_log_views
from jobrunner.node.doorbell import ring
from jobrunner.node.logship import LogReader
from jobrunner.node.staging import (
    Progress,
    download_tree,
    pack_code,
    upload_local_inputs,
    upload_tree,
)
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.scheduler.decide import quota_group
from jobrunner.scheduler.protocol import RunDoc, cancel_queued
from jobrunner.scheduler.protocol import submit as submit_run
from jobrunner.scheduler.report import NodeView, PoolReport, read_nodes, read_report
from jobrunner.spec.environments import resolve_environment, unresolved_fix
from jobrunner.spec.job import JobSpec, load_job
from jobrunner.store.client import DEFAULT_DATASTORE, RUNS, Store, queue_name
from jobrunner.store.datastores import LOCAL, Datastores
from jobrunner.store.pool_config import read_pool_config
from jobrunner.store.status import (
    RunStatus,
    create_status,
    find_run,
    list_runs,
    new_run_id,
    read_status,
    safe_segment,
    update_status,
    utc_now,
)

DEFAULT_POOL = "local"
POOL_ENV = "JOBRUNNER_POOL"
LogSink = Callable[[str, str], None]  # (stream, text)


@dataclass(frozen=True)
class PoolView:
    """What `jobrunner pool status` shows."""

    name: str
    max_nodes: int | None
    queue_length: int  # submissions the scheduler has not taken in yet
    nodes: tuple[NodeView, ...]
    report: PoolReport | None  # what the scheduler last said (None: no leader yet)
    waiting_total: int = 0


def new_run_status(
    spec: JobSpec, pool: str, run_id: str, *, experiment: str | None = None, **fields: object
) -> RunStatus:
    """The status of a run of `spec` as submitted, queued (`fields`: parent, tags, kind)."""
    # Azure ML's default experiment is the name of the folder the job is submitted from.
    experiment = experiment or safe_segment(spec.experiment_name or Path.cwd().name)
    now = utc_now()
    return RunStatus(
        id=run_id, experiment=experiment, pool=pool, display_name=spec.display_name,
        max_attempts=spec.trainstack.retry.max_attempts, instance_count=spec.instance_count,
        submitted_at=now, updated_at=now, **fields,
    ).moved_to(JobState.QUEUED, note=f"submitted to pool {pool}")  # fmt: skip


def quota_of(spec: JobSpec, experiment: str) -> tuple[tuple[str, int], ...]:
    """The quota groups the run counts against (`trainstack.quota`), as the scheduler reads them;
    `user_nodes` without a `user` counts against whoever submits (their login name)."""
    quota = spec.trainstack.quota
    out = []
    if quota.experiment_nodes is not None:
        out.append((quota_group("experiment", experiment), quota.experiment_nodes))
    if quota.user_nodes is not None:
        out.append((quota_group("user", quota.user or getpass.getuser()), quota.user_nodes))
    return tuple(sorted(out))


def queue_run(store: Store, spec: JobSpec, status: RunStatus) -> None:
    """Write the run's spec and status and queue it on its pool (its code and local inputs are
    already in place). Safe to call again for the same run: a status already there stays."""
    ref = status.ref
    store.put(RUNS, ref.spec_blob, spec.model_dump_json(by_alias=True, indent=2).encode())
    with contextlib.suppress(ConflictError):  # an earlier try wrote it and its answer was lost
        create_status(store, status)
    timeout = spec.limits.timeout
    retry = spec.trainstack.retry
    doc = RunDoc(
        status.id, spec.instance_count, None if timeout is None else float(timeout),
        spec.trainstack.priority, experiment=status.experiment, quota=quota_of(spec, status.experiment),
        retry=(retry.max_attempts, retry.no_retry_exit_codes),
    )  # fmt: skip
    submit_run(AzurePoolStore(store, status.pool), doc)
    ring(doorbell_folder(status.pool))  # a local pool's idle agents start it now, not at their next poll


def default_pool() -> str:
    return os.environ.get(POOL_ENV) or DEFAULT_POOL


class Client:
    """Submit, watch and fetch runs in a job store (see the module docstring)."""

    def __init__(
        self, store: Store | None = None, *, pool: str | None = None, datastores: Datastores = LOCAL
    ) -> None:
        """`datastores`: where datastores live in `store` (a pool's agent config map; default: the
        container named after each)."""
        self.store = store or Store.from_env()
        self.pool = pool or default_pool()
        self.datastores = datastores

    # ---------------------------------------------------------------- submit
    def check_capacity(self, spec: JobSpec, pool: str, *, source: str | None) -> str | None:
        """Refuse a job larger than the pool can ever be; returns a note when that is unknown."""
        config = read_pool_config(self.store, pool)
        if config is None:
            return f"pool {pool!r} has no recorded size: cannot check that {spec.instance_count} node(s) fit"
        if spec.instance_count > config.max_nodes:
            raise JobSpecError(
                [
                    Problem(
                        source, "resources.instance_count",
                        f"asks for {spec.instance_count} nodes; pool {pool!r} has at most {config.max_nodes}",
                        f"set `resources.instance_count` to {config.max_nodes} or less, or use a larger pool",
                    )
                ]
            )  # fmt: skip
        return None

    def check_environment(self, spec: JobSpec, pool: str, *, source: str | None) -> str | None:
        """Refuse a registered environment that resolves to no image on a pool whose nodes run
        containers (the fix names the map key to add); returns a note on what it runs in."""
        ref = spec.environment_ref
        if ref is None:
            return None
        config = read_pool_config(self.store, pool)
        resolved = resolve_environment(ref, config.environments if config else {})
        if config is None or config.containers is None:
            runs = f"would run in {resolved.image} ({resolved.how})" if resolved else "resolves to no image"
            return f"pool {pool!r} has not said whether its nodes run containers: `{ref.text}` {runs}"
        if not config.containers:
            return (
                f"environment `{ref.text}` not used: pool {pool!r} has no container runtime; "
                "the command runs on the node"
            )
        if resolved is None:
            raise JobSpecError(
                [
                    Problem(
                        source, "environment",
                        f"`{ref.text}` resolves to no image on pool {pool!r}, whose nodes run containers",
                        unresolved_fix(ref, pool),
                    )
                ]
            )  # fmt: skip
        return f"environment `{ref.text}` runs in {resolved.image} ({resolved.how})"

    def submit(
        self,
        path: str | Path,
        *,
        pool: str | None = None,
        overrides: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> RunStatus:
        """Validate the job file, upload its code and local inputs, queue it; returns its status."""
        pool = pool or self.pool
        spec = load_job(path, overrides or {})
        self.check_capacity(spec, pool, source=str(path))
        self.check_environment(spec, pool, source=str(path))
        return self.submit_spec(spec, pool=pool, progress=progress)

    def submit_spec(
        self, spec: JobSpec, *, pool: str | None = None, progress: Progress | None = None
    ) -> RunStatus:
        """Queue an already validated spec (see `submit`)."""
        pool = pool or self.pool
        status = new_run_status(spec, pool, new_run_id())
        ref = status.ref
        if spec.code:
            self.store.put(RUNS, ref.code_blob, pack_code(Path(spec.code)))
        upload_local_inputs(self.store, ref, spec, progress)
        queue_run(self.store, spec, status)
        return status

    def submit_sweep(
        self, path: str | Path, *, pool: str | None = None, notes: list[str] | None = None
    ) -> RunStatus:
        """Validate the sweep file, check its trial job against the pool, upload its code and
        local inputs once, and create the sweep's parent run: the pool's scheduler submits
        its trials (`jobrunner.sweep.parent`). JobSpecError for what the pool cannot run;
        what a person should know (a key a pool ignores, where trials run) goes to `notes`."""
        from jobrunner.sweep.load import load_sweep
        from jobrunner.sweep.parent import create_sweep_run

        pool = pool or self.pool
        sweep = load_sweep(path)
        trial = sweep.stand_in_job()
        said = [
            self.check_capacity(trial, pool, source=str(path)),
            self.check_environment(trial, pool, source=str(path)),
        ]
        if notes is not None:
            notes.extend([n for n in said if n] + list(sweep.notes))
        return create_sweep_run(self.store, pool, sweep, Path(path).read_text(encoding="utf-8"))

    # ---------------------------------------------------------------- watch
    def status(self, run_id: str) -> RunStatus:
        """The run's current status. NotFoundError for an unknown id."""
        return read_status(self.store, find_run(self.store, run_id))[0]

    def list(self, experiment: str | None = None) -> list[RunStatus]:
        """Runs, newest first."""
        return list_runs(self.store, experiment)

    def logs(self, run_id: str, *, attempt: int | None = None) -> dict[str, str]:
        """stream name -> text, for one attempt (default: the latest)."""
        status = self.status(run_id)
        reader = LogReader(self.store, status.ref.logs_prefix(attempt or status.attempt))
        out: dict[str, str] = {}
        for name, text in reader.read_new():
            out[name] = out.get(name, "") + text
        return out

    def follow(self, run_id: str, sink: LogSink | None, *, poll_s: float = 1.0,
               on_status: Callable[[RunStatus], None] | None = None) -> RunStatus:  # fmt: skip
        """Stream new log text of every attempt to `sink` until the run ends; returns its final status."""
        ref = find_run(self.store, run_id)
        readers: dict[int, LogReader] = {}
        last_state: tuple[JobState, int] | None = None
        while True:
            status, _ = read_status(self.store, ref)
            if on_status and (status.state, status.attempt) != last_state:
                on_status(status)
                last_state = (status.state, status.attempt)
            for attempt in range(1, status.attempt + 1):
                reader = readers.setdefault(attempt, LogReader(self.store, ref.logs_prefix(attempt)))
                for name, text in reader.read_new():
                    if sink:
                        sink(name, text)
            if status.state.terminal:
                # the last lines may land just after the final state: one more read
                for reader in readers.values():
                    for name, text in reader.read_new():
                        if sink:
                            sink(name, text)
                return status
            time.sleep(poll_s)

    def wait(self, run_id: str, *, show_output: bool = True, poll_s: float = 1.0) -> RunStatus:
        """Block until the run ends (printing its logs when `show_output`); returns its final status."""

        def echo(_: str, text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        return self.follow(run_id, echo if show_output else None, poll_s=poll_s)

    def cancel(self, run_id: str) -> RunStatus:
        """Ask the run to stop: a queued run is canceled at once (the scheduler drops it before
        it would assign it), a running one by its agents."""

        def change(s: RunStatus) -> RunStatus | None:
            if s.state.terminal:
                return None
            if s.state is JobState.QUEUED:
                return s.moved_to(JobState.CANCELED, note="canceled while queued", cancel_requested=True,
                                  reason="canceled on request")  # fmt: skip
            return s.model_copy(update={"cancel_requested": True, "updated_at": utc_now()})

        ref = find_run(self.store, run_id)
        status = update_status(self.store, ref, change)
        if (
            status.kind == "job"  # a sweep is never queued: the pool's leader cancels its trials
            and status.state is JobState.CANCELED
            and status.transitions[-1].note == "canceled while queued"
        ):
            cancel_queued(AzurePoolStore(self.store, status.pool), run_id)  # the scheduler drops it
        return status

    def waiting_reason(self, status: RunStatus) -> str | None:
        """What the pool's scheduler last said this queued run waits for (None: nothing said)."""
        said = read_report(AzurePoolStore(self.store, status.pool))
        prefix = f"{status.id}: "
        line = next((w for w in said[0].waiting if w.startswith(prefix)), None) if said else None
        return line.removeprefix(prefix) if line else None

    # ---------------------------------------------------------------- data
    def download_outputs(self, run_id: str, dest: str | Path, *, progress: Progress | None = None) -> int:
        """Every output of the run into `dest/<output name>/...`, and Batch AI's per-process log
        files (`logs/stdout-wk-0.txt`, ..., views of the run's logs); returns the file count."""
        ref = find_run(self.store, run_id)
        views = batchai_log_views(self.store, ref)
        try:
            count = download_tree(self.store, RUNS, ref.blob("outputs"), Path(dest), progress=progress)
        except NotFoundError:
            if not views:
                raise
            count = 0
        for name, data in views.items():
            (Path(dest) / "logs").mkdir(parents=True, exist_ok=True)
            (Path(dest) / "logs" / name).write_bytes(data)
        return count + len(views)

    def upload_data(self, source: str | Path, *, datastore: str = DEFAULT_DATASTORE, path: str = "",
                    progress: Progress | None = None) -> int:  # fmt: skip
        """Upload a file or folder to a datastore (like Azure ML's `ds.upload`); returns the file count.

        JobSpecError when `source` does not exist, ConfigError when the datastore maps to no container."""
        src = Path(source)
        if not src.exists():
            raise JobSpecError([Problem(str(src), "", "not found", "check the path")])
        store, container = self.datastores.resolve(self.store, datastore)
        return upload_tree(store, container, src, path, progress=progress)

    def download_data(self, dest: str | Path, *, datastore: str = DEFAULT_DATASTORE, path: str = "",
                      progress: Progress | None = None) -> int:  # fmt: skip
        """Download a datastore path (a file or a folder) into `dest`; returns the file count.

        NotFoundError when nothing is there, ConfigError when the datastore maps to no container."""
        store, container = self.datastores.resolve(self.store, datastore)
        return download_tree(store, container, path, Path(dest), progress=progress)

    # ---------------------------------------------------------------- pools
    def pool_status(self, pool: str | None = None) -> PoolView:
        name = pool or self.pool
        config = read_pool_config(self.store, name)
        pool_store = AzurePoolStore(self.store, name)
        said = read_report(pool_store)
        return PoolView(
            name=name,
            max_nodes=config.max_nodes if config else None,
            queue_length=self.store.queue_length(queue_name(name)),
            nodes=read_nodes(pool_store),
            report=said[0] if said else None,
            waiting_total=said[1] if said else 0,
        )
