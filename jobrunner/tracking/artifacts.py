"""The local tracking server keeps a job run's MLflow artifacts beside the run's outputs.

A local pool's MLflow server proxies artifacts (`mlflow server --serve-artifacts`): jobs upload
and readers download them over HTTP, at `mlflow-artifacts:/<experiment id>/<MLflow run id>/
artifacts/...`, with no storage credential. The proxy's destination is `jobrunner-runs:/`, this
artifact repository (registered with MLflow under the `mlflow.artifact_repository` entry point
in pyproject.toml). It keeps the artifacts of a job run's MLflow run in the job store with
MLflow's own Azure Blob repository, at `runs/<experiment>/<id>/outputs/mlflow-artifacts/...`, so
`jobrunner outputs RUN --download` and the ui's outputs list show them with the run's outputs.

A path goes to the store only when its MLflow run is the one that the job run's `tracking.json`
names: the job run is found from the MLflow run's tags (`trainstack.experiment`,
`trainstack.run_id`), which a job can set, and then checked against that record, which only
agents write (jobs have no store credential). A job that tags its run with another run's id
therefore cannot write under that run. Every other path (runs made by hand, runs of another
store, the levels above a run) stays in a local folder, as MLflow keeps artifacts by default.

The server process is configured by its environment (`start_tracking_server` sets it):
`JOBRUNNER_STORE`, the store's connection string; `JOBRUNNER_TRACKING_BACKEND`, the server's
backend URI (to read the runs' tags); `JOBRUNNER_TRACKING_ARTIFACTS`, the local folder.

Only MLflow imports this module (the entry point), after its own modules: what others use
(`artifacts_prefix`) is in `jobrunner.tracking.runs`.

Failure modes: MLflow's own (`MlflowException`, answered as an HTTP error by the server) and
StoreError from the store; a missing variable is a KeyError at the first request.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from mlflow.entities import FileInfo
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.azure_blob_artifact_repo import AzureBlobArtifactRepository
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

from jobrunner.local.tracking_server import ARTIFACTS_ENV, BACKEND_ENV
from jobrunner.store.client import RUNS, STORE_ENV, Store
from jobrunner.store.status import RunRef
from jobrunner.tracking.runs import EXPERIMENT_TAG, RUN_ID_TAG, artifacts_prefix, read_record

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class JobRunArtifactRepository(ArtifactRepository):
    """MLflow's artifact proxy destination of the local tracking server (see the module docstring).

    Thread-safe: the server calls it from several request threads; the run lookups it caches
    are written under a lock, and the repositories it hands out are MLflow's own."""

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        self._local: Any = LocalArtifactRepository(os.environ[ARTIFACTS_ENV])
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str], Any] = {}  # only confirmed job runs
        self._store: Store | None = None
        self._tracking: Any = None

    # -------------------------------------------------------- which repository
    # MLflow's repositories are untyped: the delegates are held as Any
    def _route(self, path: str | None) -> tuple[Any, str | None, str]:
        """The repository a proxied path lives in, the path inside it, and the prefix that
        turns a path of that repository back into a proxied one."""
        parts = (path or "").strip("/").split("/")
        if len(parts) >= 3 and parts[2] == "artifacts":
            repo = self._job_run_repo(parts[0], parts[1])
            if repo is not None:
                return repo, "/".join(parts[3:]) or None, "/".join(parts[:3]) + "/"
        return self._local, path, ""

    def _job_run_repo(self, experiment_id: str, mlflow_run_id: str) -> Any:
        key = (experiment_id, mlflow_run_id)
        with self._lock:
            found = self._runs.get(key)
        if found is not None:
            return found
        ref = self._job_run(experiment_id, mlflow_run_id)
        if ref is None:
            return None
        from azure.storage.blob import BlobServiceClient

        blobs = BlobServiceClient.from_connection_string(os.environ[STORE_ENV])
        # MLflow's wasbs URI names the account; the client (the store's endpoint) does the talking
        uri = f"wasbs://{RUNS}@{blobs.account_name}.blob.core.windows.net/{artifacts_prefix(ref)}"
        repo = AzureBlobArtifactRepository(uri, client=blobs)
        with self._lock:
            self._runs[key] = repo
        return repo

    def _job_run(self, experiment_id: str, mlflow_run_id: str) -> RunRef | None:
        """The job run whose recorded MLflow run this is, or None."""
        try:
            run = self._client().get_run(mlflow_run_id)
        except Exception:  # no such run (MlflowException), or not an MLflow id at all
            return None
        experiment, job_id = run.data.tags.get(EXPERIMENT_TAG, ""), run.data.tags.get(RUN_ID_TAG, "")
        if run.info.experiment_id != experiment_id or not all(
            _SEGMENT.fullmatch(s) for s in (experiment, job_id)
        ):
            return None
        ref = RunRef(experiment=experiment, id=job_id)
        record = read_record(self._connected(), ref)
        return ref if record is not None and record.run_id == mlflow_run_id else None

    def _client(self) -> Any:
        if self._tracking is None:
            from mlflow.tracking import MlflowClient

            self._tracking = MlflowClient(tracking_uri=os.environ[BACKEND_ENV])
        return self._tracking

    def _connected(self) -> Store:
        if self._store is None:
            self._store = Store.connect(os.environ[STORE_ENV])
        return self._store

    # ------------------------------------------------ MLflow's repository calls
    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        repo, inner, _ = self._route(artifact_path)
        repo.log_artifact(local_file, inner)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        repo, inner, _ = self._route(artifact_path)
        repo.log_artifacts(local_dir, inner)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        repo, inner, prefix = self._route(path)
        return [FileInfo(prefix + f.path, f.is_dir, f.file_size) for f in repo.list_artifacts(inner)]

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        repo, inner, _ = self._route(remote_file_path)
        repo._download_file(inner or "", local_path)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        repo, inner, _ = self._route(artifact_path)
        repo.delete_artifacts(inner)
