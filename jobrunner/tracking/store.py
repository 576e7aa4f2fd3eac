"""MLflow's REST tracking store with a cheaper asynchronous path, for jobs that log every step.

With `MLFLOW_ENABLE_ASYNC_LOGGING=true` (which the pool sets for a tracked job), each plain
`mlflow.log_metric` call hands its point to the store's `log_batch_async`. MLflow's own
implementation queues a batch object per call and submits a waiting task per call to a pool
of ten threads, which wake by the thousand when a batch is sent: at 1,000 points a second,
most of what a call costs the process (`bench/metrics.py`). `BatchingRestStore` is the same
REST store with that path replaced: a call appends its items to the current window under one
lock and returns the window's future; one sender thread sends each window, in order, as
`log_batch` requests of at most MLflow's per-request limits, every
`MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS` (at once when that is unset, as MLflow does).

What a job sees is MLflow's behaviour: every point (key, value, timestamp, step) reaches the
server in the order it was logged; `mlflow.flush_async_logging()`, ending the run and the
interpreter's exit send what is queued and wait for it; a synchronous call on the store first
sends what is queued, so it cannot overtake earlier points; the returned `RunOperations` waits
for the request that carries the call's items and raises its failure; a failed request is
logged as MLflow logs it (after the HTTP retries of `MLFLOW_HTTP_REQUEST_MAX_RETRIES`).

It is registered for the `http` and `https` schemes under MLflow's `mlflow.tracking_store`
entry point (pyproject.toml), so it serves every REST tracking URI of an interpreter that has
jobrunner installed: the agent's, and a job's that runs in the pool's environment. Azure ML's
`azureml://` URIs keep the store of `azureml-mlflow`. MLflow imports this module when it
loads its stores: it imports nothing of jobrunner's.

Failure modes: MLflow's (`MlflowException`, requests' errors), raised by synchronous calls,
logged and carried by the futures for asynchronous ones.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
from concurrent.futures import Future
from functools import partial
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.environment_variables import MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS
from mlflow.protos.service_pb2 import LogBatch
from mlflow.store.tracking.rest_store import RestStore
from mlflow.utils.async_logging.run_operations import RunOperations
from mlflow.utils.rest_utils import MlflowHostCreds

_logger = logging.getLogger("mlflow.utils.async_logging.async_logging_queue")

# What one log_batch request may carry (MLflow's REST API limits).
MAX_ITEMS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100


class _Window:
    """What was logged asynchronously since the last send, and the future of its sending."""

    __slots__ = ("future", "items")

    def __init__(self) -> None:
        self.items: list[tuple[str, list[Metric], list[Param], list[RunTag]]] = []
        self.future: Future[None] = Future()


def requests_of(
    items: list[tuple[str, list[Metric], list[Param], list[RunTag]]],
) -> list[tuple[str, list[Metric], list[Param], list[RunTag]]]:
    """The `log_batch` requests that carry `items` in their order: consecutive items of one run
    merged, each request within MLflow's limits (1,000 items, 100 params, 100 tags)."""
    out: list[tuple[str, list[Any], list[Any], list[Any]]] = []
    for run_id, metrics, params, tags in items:
        entries: tuple[list[Any], ...] = (metrics, params, tags)
        for kind in range(3):
            for entry in entries[kind]:
                last = out[-1] if out else None
                if (
                    last is None
                    or last[0] != run_id
                    or len(last[1]) + len(last[2]) + len(last[3]) >= MAX_ITEMS
                    or (kind == 1 and len(last[2]) >= MAX_PARAMS)
                    or (kind == 2 and len(last[3]) >= MAX_TAGS)
                ):
                    last = (run_id, [], [], [])
                    out.append(last)
                lists: tuple[list[Any], ...] = last[1:]
                lists[kind].append(entry)
    return out


_NOT_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _metric_json(m: Metric) -> dict[str, Any]:
    value = float(m.value)
    out: dict[str, Any] = {
        "key": m.key,
        "value": value if math.isfinite(value) else _NOT_FINITE.get(value, "NaN"),
        "timestamp": int(m.timestamp),
        "step": int(m.step),
    }
    for field in ("model_id", "dataset_name", "dataset_digest", "run_id"):
        if getattr(m, field, None):
            out[field] = getattr(m, field)
    return out


def batch_json(run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]) -> str:
    """The body of a `log_batch` request, as MLflow's `message_to_json` of its LogBatch proto
    reads on the server, built from plain dicts: protobuf's JSON printer costs more than a
    thousand points' HTTP request (`tests/tracking/test_tracking_store.py` holds them equal)."""
    body: dict[str, Any] = {"run_id": run_id}
    if metrics:
        body["metrics"] = [_metric_json(m) for m in metrics]
    if params:
        body["params"] = [{"key": p.key, "value": p.value} for p in params]
    if tags:
        body["tags"] = [{"key": t.key, "value": t.value} for t in tags]
    return json.dumps(body)


class BatchingRestStore(RestStore):
    """MLflow's RestStore whose asynchronous logging costs a call one append (module docstring)."""

    def __init__(self, get_host_creds: Any) -> None:
        super().__init__(get_host_creds)  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()  # guards the window; held for an append or a swap
        self._send_lock = threading.Lock()  # one window sent at a time, in order
        self._window = _Window()
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None
        # a forked child (a data loader's worker) has no sender thread: it starts its own
        os.register_at_fork(after_in_child=self._forget_sender)

    def _forget_sender(self) -> None:
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._window = _Window()
        self._wake = threading.Event()
        self._sender = None

    # -- the asynchronous path --------------------------------------------------------------

    def log_batch_async(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> RunOperations:
        with self._lock:
            window = self._window
            window.items.append((run_id, metrics, params, tags))
            if self._sender is None:
                self._start()
        if not self._buffer_s:
            self._wake.set()
        return RunOperations([window.future])  # type: ignore[no-untyped-call]

    def log_metric_async(self, run_id: str, metric: Metric) -> RunOperations:
        return self.log_batch_async(run_id, [metric], [], [])

    def log_param_async(self, run_id: str, param: Param) -> RunOperations:
        return self.log_batch_async(run_id, [], [param], [])

    def set_tag_async(self, run_id: str, tag: RunTag) -> RunOperations:
        return self.log_batch_async(run_id, [], [], [tag])

    def flush_async_logging(self) -> None:
        """Send everything logged so far and wait for it."""
        self._send_pending()

    def end_async_logging(self) -> None:
        self._send_pending()

    def shut_down_async_logging(self) -> None:
        self._send_pending()

    def _start(self) -> None:
        self._buffer_s = float(MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS.get() or 0)  # type: ignore[no-untyped-call]
        self._sender = threading.Thread(target=self._send_loop, name="MLflowBatchSender", daemon=True)
        self._sender.start()
        atexit.register(self._send_pending)

    _buffer_s = 0.0

    def _send_loop(self) -> None:
        while True:
            if self._buffer_s:
                self._wake.wait(self._buffer_s)
            else:
                self._wake.wait()
            self._wake.clear()
            self._send_pending()

    def _send_pending(self) -> None:
        with self._send_lock:
            with self._lock:
                window, self._window = self._window, _Window()
            if not window.items:
                window.future.set_result(None)
                return
            failure: BaseException | None = None
            for run_id, metrics, params, tags in requests_of(window.items):
                try:
                    self._call_endpoint(LogBatch, batch_json(run_id, metrics, params, tags))  # type: ignore[no-untyped-call]
                except Exception as exc:  # what MLflow's queue does: log it, fail the future
                    _logger.error(f"Run Id {run_id}: Failed to log run data: Exception: {exc}")
                    failure = exc
            if failure is None:
                window.future.set_result(None)
            else:
                window.future.set_exception(failure)

    # -- synchronous calls send what is queued first, so they cannot overtake it ------------

    def _before_sync(self) -> None:
        if self._window.items:
            self._send_pending()

    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> None:
        self._before_sync()
        super().log_batch(run_id, metrics, params, tags)  # type: ignore[no-untyped-call]

    def log_metric(self, run_id: str, metric: Metric) -> None:
        self._before_sync()
        super().log_metric(run_id, metric)

    def log_param(self, run_id: str, param: Param) -> None:
        self._before_sync()
        super().log_param(run_id, param)  # type: ignore[no-untyped-call]

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        self._before_sync()
        super().set_tag(run_id, tag)  # type: ignore[no-untyped-call]

    def update_run_info(self, *args: Any, **kwargs: Any) -> Any:
        self._before_sync()
        return super().update_run_info(*args, **kwargs)  # type: ignore[no-untyped-call]


def rest_store(store_uri: str, **_: Any) -> BatchingRestStore:
    """The store MLflow builds for an http(s) tracking URI (the entry point's target)."""
    from mlflow.utils.credentials import get_default_host_creds

    creds: partial[MlflowHostCreds] = partial(get_default_host_creds, store_uri)
    return BatchingRestStore(creds)
