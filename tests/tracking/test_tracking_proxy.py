"""The job's tracking endpoint on loopback, in front of a real MLflow server (the session's),
with a recording tap between the two to see what reaches the upstream: a plain-MLflow job with
no credential logs through it, every forwarded request carries the node's token (never the
job's secret), and requests for another run, another experiment, a call outside MLflow's API
or without the job's secret are refused before they reach the upstream."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from jobrunner.spec.job import parse_job
from jobrunner.store.client import Store
from jobrunner.store.status import RunRef
from jobrunner.tracking.proxy import (
    MLFLOW_TRACKING_TOKEN,
    TrackingProxy,
    start_tracking_proxy,
    with_proxied_tracking,
)
from jobrunner.tracking.runs import TrackingRecord, open_tracking_run

_ids = itertools.count()
JOB = """
import mlflow
with mlflow.start_run():
    mlflow.log_param("lr", 0.1)
    for step in range(5):
        mlflow.log_metric("loss", 1 / (step + 1), step=step)
    mlflow.set_tag("who", "job")
    mlflow.log_text("hello", "notes/hello.txt")
"""


class Tap:
    """A relay that records what it forwards to a real server (method, path, Authorization)."""

    def __init__(self, upstream: str) -> None:
        self.seen: list[tuple[str, str, str]] = []
        target = urlsplit(upstream)
        tap = self

        class Relay(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                tap.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for k, v in reply.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def tap(tracking_server: str) -> Iterator[Tap]:
    relay = Tap(tracking_server)
    yield relay
    relay.server.shutdown()
    relay.server.server_close()


def opened(azurite: str, tracking_server: str) -> TrackingRecord:
    """A new job run's MLflow run, opened as an agent opens it."""
    ref = RunRef(experiment="proxied", id=f"run-proxied-{os.getpid()}-{next(_ids)}")
    spec = parse_job("command: echo\nexperiment_name: proxied\n", source="job.yml")
    return open_tracking_run(Store.connect(azurite), ref, spec, tracking_server, pool="p")


@pytest.fixture
def proxy(azurite: str, tracking_server: str, tap: Tap) -> Iterator[TrackingProxy]:
    tokens = itertools.count(1)
    with start_tracking_proxy(
        opened(azurite, tracking_server), token=lambda: f"node-token-{next(tokens)}", upstream=tap.uri
    ) as running:
        yield running


def call(
    proxy: TrackingProxy, method: str, path: str, body: Any = None, secret: str | None = "ours"
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {proxy.secret if secret == 'ours' else secret}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(proxy.uri + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_a_job_with_no_credential_logs_through_it_signed_by_the_node(
    proxy: TrackingProxy, tap: Tap, tracking_server: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    spec = with_proxied_tracking(parse_job("command: python job.py\n", source="job.yml"), proxy)
    job_env = spec.environment_variables
    assert job_env["MLFLOW_TRACKING_URI"] == proxy.uri and job_env[MLFLOW_TRACKING_TOKEN] == proxy.secret
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **job_env}
    assert not [k for k in env if k.startswith(("AZURE_", "JOBRUNNER_"))]
    (tmp_path / "job.py").write_text(JOB)
    before = len(tap.seen)
    done = subprocess.run(
        [sys.executable, "job.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr

    client = MlflowClient(tracking_uri=tracking_server)
    run = client.get_run(proxy.record.run_id)
    assert run.data.params == {"lr": "0.1"} and run.data.tags["who"] == "job"
    assert [m.step for m in client.get_metric_history(proxy.record.run_id, "loss")] == list(range(5))
    assert [a.path for a in client.list_artifacts(proxy.record.run_id, "notes")] == ["notes/hello.txt"]
    forwarded = tap.seen[before:]
    assert forwarded and all(auth.startswith("Bearer node-token-") for _, _, auth in forwarded)
    assert not any(proxy.secret in auth for _, _, auth in forwarded)


def test_another_runs_id_and_calls_outside_the_jobs_scope_are_refused(
    proxy: TrackingProxy, tap: Tap, tracking_server: str, azurite: str
) -> None:
    other = opened(azurite, tracking_server)  # a job run of someone else, in the same experiment
    ours = proxy.record
    before = len(tap.seen)
    refused = [
        call(proxy, "GET", f"/api/2.0/mlflow/runs/get?run_id={other.run_id}"),
        call(
            proxy,
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            {"run_id": other.run_id, "key": "x", "value": 1, "timestamp": 1},
        ),
        call(proxy, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": other.run_id, "metrics": []}),
        call(proxy, "POST", "/api/2.0/mlflow/runs/delete", {"run_id": ours.run_id}),
        call(proxy, "POST", "/api/2.0/mlflow/experiments/create", {"name": "elsewhere"}),
        call(proxy, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": "0"}),
        call(proxy, "POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [ours.experiment_id, "0"]}),
        call(
            proxy,
            "GET",
            f"/api/2.0/mlflow-artifacts/artifacts/{other.experiment_id}/{other.run_id}/artifacts/x",
        ),
        call(proxy, "GET", f"/api/2.0/mlflow-artifacts/artifacts?path={other.experiment_id}/{other.run_id}"),
        call(proxy, "GET", "/health"),
    ]
    assert [status for status, _ in refused] == [403] * len(refused)
    assert "is not this job's run" in refused[0][1]["message"]
    assert tap.seen[before:] == []  # none of them reached the upstream

    status, answer = call(proxy, "GET", f"/api/2.0/mlflow/runs/get?run_id={ours.run_id}")
    assert status == 200 and answer["run"]["info"]["run_id"] == ours.run_id
    assert tap.seen[before:] and tap.seen[-1][2].startswith("Bearer node-token-")


def test_without_the_jobs_secret_nothing_is_forwarded(proxy: TrackingProxy, tap: Tap) -> None:
    before = len(tap.seen)
    path = f"/api/2.0/mlflow/runs/get?run_id={proxy.record.run_id}"
    assert call(proxy, "GET", path, secret=None)[0] == 401
    assert call(proxy, "GET", path, secret="guessed")[0] == 401
    assert tap.seen[before:] == []


def test_a_run_the_job_creates_in_its_experiment_is_its_own(proxy: TrackingProxy) -> None:
    status, created = call(
        proxy, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": proxy.record.experiment_id}
    )
    assert status == 200
    nested = created["run"]["info"]["run_id"]
    body = {"run_id": nested, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
    assert call(proxy, "POST", "/api/2.0/mlflow/runs/log-metric", body)[0] == 200


def test_a_token_source_that_fails_answers_the_job_and_forwards_nothing(
    azurite: str, tracking_server: str, tap: Tap
) -> None:
    def no_identity() -> str:
        raise RuntimeError("ManagedIdentityCredential: no identity on this node")

    with start_tracking_proxy(opened(azurite, tracking_server), token=no_identity, upstream=tap.uri) as proxy:
        before = len(tap.seen)
        status, answer = call(proxy, "GET", f"/api/2.0/mlflow/runs/get?run_id={proxy.record.run_id}")
    assert status == 502 and "no identity on this node" in answer["message"]
    assert tap.seen[before:] == []


def test_a_body_without_a_length_is_refused(proxy: TrackingProxy, tap: Tap) -> None:
    before = len(tap.seen)
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(proxy.uri).port, timeout=60)
    conn.putrequest("POST", "/api/2.0/mlflow/runs/log-batch")
    conn.putheader("Authorization", f"Bearer {proxy.secret}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"2\r\n{}\r\n0\r\n\r\n")
    assert conn.getresponse().status == 411
    conn.close()
    assert tap.seen[before:] == []
