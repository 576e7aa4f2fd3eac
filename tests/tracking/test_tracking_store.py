"""The REST store a job's plain `mlflow.log_metric` calls go through (`jobrunner.tracking.store`):
the requests it builds are MLflow's own, every point is sent once and in order, and what is
queued reaches the server when the job flushes, ends its run or simply exits."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.service_pb2 import LogBatch
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _get_store
from mlflow.utils.proto_json_utils import message_to_json

from jobrunner.tracking.store import (
    MAX_ITEMS,
    MAX_PARAMS,
    MAX_TAGS,
    BatchingRestStore,
    batch_json,
    requests_of,
)


class Recording(BatchingRestStore):
    """The store with its requests recorded instead of sent."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(lambda: None)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def _call_endpoint(self, api: Any, json_body: Any = None, *args: Any, **kwargs: Any) -> None:
        if self.fail:
            raise MlflowException("refused")
        self.sent.append((api.__name__, json.loads(json_body)))


def test_the_request_body_is_the_one_mlflows_proto_printer_makes() -> None:
    metrics = [
        Metric("loss", 1.5, 1_700_000_000_123, 4),
        Metric("nan", math.nan, 1, 0),
        Metric("up", math.inf, 2, 0),
        Metric("down", -math.inf, 3, 0),
        Metric("int", 3, 4, -2),
        Metric("zero", 0.0, 0, 0),
        Metric("of_model", -1.0, 5, 7, model_id="m-1", dataset_name="d", dataset_digest="x"),
    ]
    params, tags = [Param("lr", "0.1")], [RunTag("note", ""), RunTag("k", "v")]
    for m, p, t in ((metrics, params, tags), (metrics, [], []), ([], params, []), ([], [], tags)):
        protos = {"metrics": [x.to_proto() for x in m], "params": [x.to_proto() for x in p]}
        proto = LogBatch(run_id="r", tags=[x.to_proto() for x in t], **protos)
        assert json.loads(batch_json("r", m, p, t)) == json.loads(message_to_json(proto))


def test_requests_keep_the_order_and_mlflows_limits() -> None:
    metrics = [Metric("m", float(i), i, i) for i in range(2 * MAX_ITEMS + 5)]
    params = [Param(f"p{i}", "v") for i in range(MAX_PARAMS + 1)]
    tags = [RunTag(f"t{i}", "v") for i in range(MAX_TAGS + 1)]
    items = [("a", metrics[:10], [], []), ("a", metrics[10:], params, tags), ("b", metrics[:3], [], [])]
    out = requests_of(items)
    for _run, m, p, t in out:
        assert len(m) + len(p) + len(t) <= MAX_ITEMS and len(p) <= MAX_PARAMS and len(t) <= MAX_TAGS
    assert [m.step for run, ms, _, _ in out if run == "a" for m in ms] == list(range(len(metrics)))
    assert [p.key for _, _, ps, _ in out for p in ps] == [p.key for p in params]
    assert [t.key for _, _, _, ts in out for t in ts] == [t.key for t in tags]
    assert out[-1][0] == "b" and [m.step for m in out[-1][1]] == [0, 1, 2]


def test_queued_points_go_in_order_and_a_synchronous_call_cannot_overtake_them() -> None:
    store = Recording()
    ops = [store.log_metric_async("r", Metric("loss", float(i), i, i)) for i in range(2500)]
    store.log_param_async("r", Param("lr", "0.1"))
    store.log_metric("r", Metric("sync", 1.0, 1, 1))  # sends the queue first, then itself
    ops[0].wait()
    kinds = [api for api, _ in store.sent]
    assert kinds[-1] == "LogMetric" and set(kinds[:-1]) == {"LogBatch"}
    steps = [m["step"] for _, body in store.sent[:-1] for m in body.get("metrics", [])]
    assert steps == list(range(2500))
    assert [p["key"] for _, body in store.sent for p in body.get("params", [])] == ["lr"]
    store.flush_async_logging()  # nothing left: no request
    assert len(store.sent) == len(kinds)


def test_a_refused_batch_fails_its_calls_futures() -> None:
    store = Recording(fail=True)
    op = store.log_metric_async("r", Metric("loss", 1.0, 1, 1))
    store.flush_async_logging()
    with pytest.raises(MlflowException, match="refused"):
        op.wait()


def test_the_pools_interpreter_builds_this_store_for_rest_uris() -> None:
    assert isinstance(_get_store("http://127.0.0.1:1"), BatchingRestStore)
    assert isinstance(_get_store("https://example.invalid"), BatchingRestStore)


JOB = """\
import mlflow
from mlflow.tracking._tracking_service.utils import _get_store
assert type(_get_store()).__name__ == "BatchingRestStore"
for step in range(3000):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_000_000 + step)
mlflow.log_metric("late", 2.0, step=1)
# no flush, no end_run: the interpreter's exit sends what is queued
"""


@pytest.mark.slow
def test_a_job_that_just_exits_has_every_point_on_the_server(tracking_server: str) -> None:
    client = MlflowClient(tracking_uri=tracking_server)
    experiment = client.create_experiment("tracking-store-exit")
    run = client.create_run(experiment)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_server,
        "MLFLOW_RUN_ID": run.info.run_id,
        "MLFLOW_ENABLE_ASYNC_LOGGING": "true",
        "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1",
        "MLFLOW_REGISTRY_URI": tracking_server,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    done = subprocess.run([sys.executable, "-c", JOB], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted((m.step, m.timestamp, m.value) for m in history) == [
        (step, 1_000_000 + step, 1.0 / (step + 1)) for step in range(3000)
    ]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "late")] == [2.0]
