"""One MLflow run per job run, shared by every process of every node, and reading it back.

The pool's tracking server is MLflow's (a local `mlflow server` on a local pool,
`jobrunner.local.tracking_server`; the stack's Azure ML workspace on a GPU pool, whose
`azureml://` URI the agent config names). Before a node starts the job's processes,
`open_tracking_run` finds or creates the run's MLflow run and records it in the store, in
`runs/<experiment>/<id>/tracking.json` (`TrackingRecord`), written only if absent: the gang's
rank 0 creates it on the first attempt, every later attempt reuses it. The other ranks wait a
little for rank 0's record (`wait_s`: one read, then reads ever further apart) instead of
creating runs of their own; one that still finds none creates its own, and a node that lost
that race deletes the MLflow run it made, so that the job keeps one run whatever the timing.
`tracking_env` is what the job's processes then see (MLflow's own variables), so plain
`mlflow.log_metric` calls from any rank land in that run without a trainstack import.

A job that sets `MLFLOW_TRACKING_URI` itself keeps it: the agent then sets none of the three.

Readers (`jobrunner metrics`, `status`, `ui`) take the record from the store and ask the
tracking server named in it (`read_run_metrics`), so they need no agent config.

Failure modes: TrackingError when MLflow's client is missing or the server refuses or cannot
be reached; StoreError / NotFoundError from the store as usual.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from jobrunner.api import JobState
from jobrunner.errors import ConflictError, NotFoundError, TrackingError
from jobrunner.plan import environment as V
from jobrunner.spec.job import JobSpec
from jobrunner.spec.safety import MLFLOW_ARTIFACTS_OUTPUT
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import RunRef

RECORD_BLOB = "tracking.json"
_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}  # (tracking URI, experiment name) -> id, per process
RECORD_WAIT_FIRST_S = 0.5  # a waiting node's second read of the record; each next one twice as late
RUN_ID_TAG = "trainstack.run_id"  # the job run's id, on its MLflow run
EXPERIMENT_TAG = "trainstack.experiment"  # the job run's experiment folder in the store
POOL_TAG = "trainstack.pool"
# What the pool sets under the job's own variables: plain `mlflow.log_metric` calls queue their
# points and a background thread sends them in batches, one request a second, instead of one
# request per call inside the training loop (`bench/metrics.py`). In the pool's environment the
# queue is `jobrunner.tracking.store`'s (an append per call, one sender thread), registered with
# MLflow for http(s) tracking URIs. A job may set either variable itself.
LOGGING_DEFAULTS = {"MLFLOW_ENABLE_ASYNC_LOGGING": "true", "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"}
# Each `mlflow.log_metric` call builds two MlflowClients, and each of those looks for the model
# registry in an active Spark session unless MLFLOW_REGISTRY_URI is set: a failed
# `import pyspark`, searched again along sys.path on every call (most of a call's time,
# `bench/metrics.py`). The registry is the tracking server, MLflow's own default for it. The
# usage telemetry MLflow sends to its makers wraps every call too, and a node need not reach
# the internet: off. A job may set either itself.
DISABLE_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true"}

# How a concluded job run ends its MLflow run (MLflow's RunStatus names).
FINAL_STATUS = {JobState.SUCCEEDED: "FINISHED", JobState.FAILED: "FAILED", JobState.CANCELED: "KILLED"}


class TrackingRecord(BaseModel):
    """Where a job run's metrics are: the tracking server and the MLflow run in it."""

    model_config = ConfigDict(frozen=True)
    uri: str
    run_id: str
    experiment_id: str
    experiment: str


class MetricPoint(BaseModel):
    model_config = ConfigDict(frozen=True)
    step: int
    value: float
    timestamp: int  # milliseconds since the epoch, as MLflow keeps it


class RunMetrics(BaseModel):
    """A job run's params and every point of every metric (what `jobrunner metrics --json` prints)."""

    model_config = ConfigDict(frozen=True)
    run: str
    params: dict[str, str]
    metrics: dict[str, list[MetricPoint]]

    def last(self) -> dict[str, float]:
        """The latest value of each metric (by step, then time)."""
        return {
            name: max(points, key=lambda p: (p.step, p.timestamp)).value
            for name, points in sorted(self.metrics.items())
            if points
        }


AZUREML_SCHEME = "azureml://"
# The audience Azure ML's MLflow endpoint takes tokens for (Azure Resource Manager's).
AZUREML_TOKEN_SCOPE = "https://management.azure.com/.default"


def rest_uri(uri: str) -> str:
    """The http(s) address of a tracking URI: Azure ML's `azureml://<region>.api.azureml.ms/mlflow/
    v1.0/...` is served at `https://` the same path (what `azureml-mlflow` does for jobs)."""
    return "https://" + uri.removeprefix(AZUREML_SCHEME) if uri.startswith(AZUREML_SCHEME) else uri


def _azureml_token() -> str:
    """A token of the node's managed identity (`AZURE_CLIENT_ID`: the pool's identity) for Azure ML."""
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(managed_identity_client_id=os.environ.get("AZURE_CLIENT_ID"))
    return str(credential.get_token(AZUREML_TOKEN_SCOPE).token)


def preload_client() -> None:
    """Import MLflow's client now: about a second of CPU (it brings pandas and more), which a
    node would otherwise pay at its first tracked run, while that run's job trains. The agent
    calls it on a thread of its own when it starts with a tracking server. The agent's usage
    telemetry to MLflow's makers is off, as it is for jobs (a node need not reach the internet,
    and its consumer thread would keep trying). Never raises: a missing client is
    `_client`'s TrackingError, at the first tracked run."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with contextlib.suppress(Exception):
        from mlflow.tracking import MlflowClient  # noqa: F401


def _client(uri: str) -> Any:
    """MLflow's own client for `uri`. The agent's environment holds only `mlflow-skinny` (Azure
    ML's plugin pins older storage packages than the agent's), so for an `azureml://` URI it
    speaks MLflow's REST protocol to the workspace's https endpoint with the node's token."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # see preload_client
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackingError(
            "the MLflow client is not installed",
            fix="pip install 'jobrunner[tracking]' (mlflow-skinny; make setup installs it)",
        ) from None
    # MLflow retries a refused request for minutes by default; a reader should say so at once.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    if uri.startswith(AZUREML_SCHEME):
        try:
            os.environ["MLFLOW_TRACKING_TOKEN"] = _azureml_token()
        except Exception as exc:  # azure-identity raises several kinds
            raise TrackingError(
                f"no token for the workspace's tracking server {uri}: {exc}",
                fix="give the node a managed identity with AzureML Data Scientist on the workspace",
            ) from exc
    return MlflowClient(tracking_uri=rest_uri(uri))


def _call(uri: str, what: str, fn: Any) -> Any:
    try:
        return fn()
    except TrackingError:
        raise
    except Exception as exc:  # MLflow raises MlflowException, requests' errors and more
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrackingError(
            f"tracking server {uri}: {what} failed: {first}",
            fix="check that the tracking server runs (`jobrunner local-pool start` starts the local one)",
        ) from exc


def artifacts_prefix(ref: RunRef) -> str:
    """Where in the `runs` container a local pool keeps a job run's MLflow artifacts: a folder
    of its outputs (`jobrunner.tracking.artifacts`), so they download with them."""
    return ref.blob(f"outputs/{MLFLOW_ARTIFACTS_OUTPUT}")


def record_blob(ref: RunRef) -> str:
    return ref.blob(RECORD_BLOB)


def read_record(store: Store, ref: RunRef) -> TrackingRecord | None:
    """The run's tracking record, or None when it has none (not started, or untracked pool)."""
    try:
        data, _ = store.get(RUNS, record_blob(ref))
    except NotFoundError:
        return None
    return TrackingRecord.model_validate_json(data)


def open_tracking_run(
    store: Store, ref: RunRef, spec: JobSpec, uri: str, *, pool: str, wait_s: float = 0.0
) -> TrackingRecord:
    """The job run's MLflow run: the recorded one, or a new one recorded now (see the module
    docstring for the race between nodes). With `wait_s`, the record another node is making
    is waited for that long before this one makes its own. Raises TrackingError when the
    server fails."""
    found = _wait_for_record(store, ref, wait_s)
    if found is not None:
        return found
    client = _client(uri)
    experiment = spec.experiment_name or ref.experiment
    # the job's own tags too (a sweep's trial: its parameters), as Azure ML shows them
    own = {str(k): str(v) for k, v in (spec.tags or {}).items()}
    tags = {**own, RUN_ID_TAG: ref.id, EXPERIMENT_TAG: ref.experiment, POOL_TAG: pool}

    def create(experiment_id: str) -> Any:
        return client.create_run(experiment_id, run_name=spec.display_name or ref.id, tags=tags)

    experiment_id = _experiment_id(client, uri, experiment)
    try:
        created = _call(uri, "creating the run", lambda: create(experiment_id))
    except TrackingError:
        if _EXPERIMENT_IDS.pop((uri, experiment), None) is None:
            raise
        # the id known from an earlier run may be gone (the experiment deleted): look it up again
        experiment_id = _experiment_id(client, uri, experiment)
        created = _call(uri, "creating the run", lambda: create(experiment_id))
    record = TrackingRecord(
        uri=uri, run_id=created.info.run_id, experiment_id=experiment_id, experiment=experiment
    )
    try:
        store.put(RUNS, record_blob(ref), record.model_dump_json().encode(), if_absent=True)
    except ConflictError:
        # another node recorded its run first: use that one, and leave no empty twin behind
        with contextlib.suppress(Exception):
            client.delete_run(record.run_id)
        winner = read_record(store, ref)
        if winner is None:  # pragma: no cover - the blob that beat us cannot vanish
            raise
        return winner
    return record


def _wait_for_record(store: Store, ref: RunRef, wait_s: float) -> TrackingRecord | None:
    """The run's record, read again `RECORD_WAIT_FIRST_S` later, then twice as late each time,
    until `wait_s` has passed (None: still none)."""
    deadline = time.monotonic() + wait_s
    gap = RECORD_WAIT_FIRST_S
    while True:
        found = read_record(store, ref)
        left = deadline - time.monotonic()
        if found is not None or left <= 0:
            return found
        time.sleep(min(gap, left))
        gap *= 2


def _experiment_id(client: Any, uri: str, name: str) -> str:
    """The id of experiment `name` on `uri` (made when missing), looked up once per process:
    an agent runs many jobs of few experiments, and each lookup is a call to the server."""
    known = _EXPERIMENT_IDS.get((uri, name))
    if known is not None:
        return known
    found = _call(uri, f"looking up experiment {name!r}", lambda: client.get_experiment_by_name(name))
    if found is not None:
        experiment_id = str(found.experiment_id)
    else:
        try:
            experiment_id = str(client.create_experiment(name))
        except Exception:
            # created by another node meanwhile
            again = _call(uri, f"looking up experiment {name!r}", lambda: client.get_experiment_by_name(name))
            if again is None:
                raise TrackingError(f"tracking server {uri}: cannot create experiment {name!r}") from None
            experiment_id = str(again.experiment_id)
    _EXPERIMENT_IDS[(uri, name)] = experiment_id
    return experiment_id


def tracking_env(record: TrackingRecord) -> dict[str, str]:
    """MLflow's own variables for every process of the run."""
    return {
        V.MLFLOW_TRACKING_URI: record.uri,
        V.MLFLOW_RUN_ID: record.run_id,
        V.MLFLOW_EXPERIMENT_NAME: record.experiment,
    }


def tracking_defaults(record: TrackingRecord) -> dict[str, str]:
    """What the pool sets for a tracked job under the job's own variables: asynchronous
    logging, the registry URI and telemetry off (see `LOGGING_DEFAULTS`, `DISABLE_TELEMETRY`)."""
    return {**LOGGING_DEFAULTS, **DISABLE_TELEMETRY, V.MLFLOW_REGISTRY_URI: record.uri}


def with_tracking(spec: JobSpec, record: TrackingRecord | None) -> JobSpec:
    """`spec` with the MLflow variables among its environment variables (and
    `tracking_defaults` under its own), unless the job names a tracking server of its own (then
    it is left as it is)."""
    if record is None or V.MLFLOW_TRACKING_URI in spec.environment_variables:
        return spec
    env = {**tracking_defaults(record), **spec.environment_variables, **tracking_env(record)}
    return spec.model_copy(update={"environment_variables": env})


def finish_tracking_run(store: Store, ref: RunRef, state: JobState) -> None:
    """Mark the MLflow run ended as the job run ended (FINISHED, FAILED or KILLED). Every node
    may call it; the last write wins and says the same. Raises TrackingError."""
    record = read_record(store, ref)
    if record is None or state not in FINAL_STATUS:
        return
    client = _client(record.uri)
    _call(record.uri, "ending the run", lambda: client.set_terminated(record.run_id, FINAL_STATUS[state]))


def read_run_metrics(record: TrackingRecord, run_id: str) -> RunMetrics:
    """Params and the full history of every metric of the job run `run_id`. Raises TrackingError."""
    client = _client(record.uri)
    run = _call(record.uri, "reading the run", lambda: client.get_run(record.run_id))
    metrics: dict[str, list[MetricPoint]] = {}
    for name in sorted(run.data.metrics):
        history = _call(
            record.uri, f"reading metric {name!r}", lambda n=name: client.get_metric_history(record.run_id, n)
        )
        points = [MetricPoint(step=m.step, value=m.value, timestamp=m.timestamp) for m in history]
        metrics[name] = sorted(points, key=lambda p: (p.step, p.timestamp))
    return RunMetrics(run=run_id, params=dict(sorted(run.data.params.items())), metrics=metrics)


def metric_values(record: TrackingRecord, name: str) -> list[float]:
    """The values of one metric of the MLflow run, in order (step, then time). Raises TrackingError."""
    client = _client(record.uri)
    history = _call(
        record.uri, f"reading metric {name!r}", lambda: client.get_metric_history(record.run_id, name)
    )
    return [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]


def metrics_json(metrics: RunMetrics) -> str:
    return json.dumps(metrics.model_dump(mode="json"), indent=2)
