"""A tracking endpoint on loopback for one job run: MLflow's REST calls, signed by the node.

Jobs never get the node's Azure identity (IMDS is blocked for the job user, no `AZURE_*` in
their environment), yet the workspace's MLflow server wants a token. So the agent starts a
`TrackingProxy` for each attempt and gives the job `MLFLOW_TRACKING_URI=http://127.0.0.1:<port>`
and `MLFLOW_TRACKING_TOKEN=<a secret of this proxy>`, which MLflow's client sends as
`Authorization: Bearer ...`. The proxy refuses a request without that secret (another job on
the node cannot use this job's proxy), checks the request against its run, and forwards it to
the tracking server's REST address with the node's token instead (`azure-identity`, in the
agent's process).

What it forwards (everything else is answered 403 without reaching the upstream):
- MLflow's run calls (`/api/2.0/mlflow/runs/...`, `metrics/...`, `artifacts/list`) whose
  `run_id` / `run_uuid` (query or JSON body) is the job's run, or a run it created;
- `runs/create` and `runs/search` in the job's experiment, `experiments/get` and
  `experiments/get-by-name` of that experiment only; a run created through the proxy (a nested
  run) is the job's from then on;
- the artifact proxy's paths (`/api/2.0/mlflow-artifacts/artifacts/<experiment id>/<run id>/...`)
  of those runs; `/api/3.0/mlflow/server-info`, which names no run.

`start_tracking_proxy(record)` is what the agent calls before it launches an attempt, and
`with_proxied_tracking(spec, proxy)` the spec it launches; `proxy.stop()` after the attempt.

Failure modes: TrackingError when the port cannot be bound. A token source that fails answers
the job 502 with the reason (the job's MLflow client then raises, as with any server error);
an upstream that cannot be reached answers 502; the proxy itself never raises into the agent.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jobrunner.errors import TrackingError
from jobrunner.spec.job import JobSpec
from jobrunner.tracking.runs import AZUREML_TOKEN_SCOPE, TrackingRecord, rest_uri, with_tracking

MLFLOW_TRACKING_TOKEN = "MLFLOW_TRACKING_TOKEN"  # MLflow's client sends it as a bearer token
UPSTREAM_TIMEOUT_S = 60.0
CHUNK = 1 << 20
_log = logging.getLogger(__name__)

API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
SERVER_INFO = "/api/3.0/mlflow/server-info"
# MLflow REST calls that name one run (its `run_id` in the query of a GET, the body of a POST)
RUN_CALLS: frozenset[tuple[str, str]] = frozenset(
    {("GET", "runs/get"), ("GET", "metrics/get-history"), ("GET", "artifacts/list")}
    | {
        ("POST", f"runs/{name}")
        for name in (
            "update",
            "log-metric",
            "log-parameter",
            "log-batch",
            "set-tag",
            "delete-tag",
            "log-inputs",
            "log-outputs",
            "log-model",
        )
    }  # fmt: skip
)
# Hop-by-hop headers, and the ones the proxy sets itself
_DROPPED = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
            "host", "authorization", "content-length"}  # fmt: skip


def node_token_source(client_id: str | None = None) -> Callable[[], str]:
    """The node's managed identity (`client_id`, else `AZURE_CLIENT_ID` of the agent) as a token
    source for Azure ML; azure-identity caches the token and renews it before it expires."""
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(
        managed_identity_client_id=client_id or os.environ.get("AZURE_CLIENT_ID")
    )
    return lambda: str(credential.get_token(AZUREML_TOKEN_SCOPE).token)


@dataclass
class Scope:
    """What one job may touch: its experiment and its runs (the job's, and those it created)."""

    experiment_id: str
    experiment_name: str
    run_ids: set[str]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def owns(self, run_id: object) -> bool:
        with self.lock:
            return isinstance(run_id, str) and run_id in self.run_ids

    def add(self, run_id: str) -> None:
        with self.lock:
            self.run_ids.add(run_id)


def refusal(method: str, path: str, query: dict[str, list[str]], body: Any, scope: Scope) -> str | None:
    """Why a request is not the job's to make, or None when it may be forwarded (pure: tested
    on its own)."""
    if path == SERVER_INFO and method == "GET":
        return None
    if path == ARTIFACTS or path.startswith(ARTIFACTS + "/"):
        where = path[len(ARTIFACTS) + 1 :] if path != ARTIFACTS else (query.get("path") or [""])[0]
        parts = where.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == scope.experiment_id and scope.owns(parts[1]):
            return None
        return f"artifacts at {where!r} are not this job's run's"
    if not path.startswith(API):
        return f"{path} is not an MLflow tracking call"
    call = path[len(API) :]
    fields = body if isinstance(body, dict) else {k: v[0] for k, v in query.items() if v}
    if (method, call) in RUN_CALLS:
        run_id = fields.get("run_id") or fields.get("run_uuid")
        return None if scope.owns(run_id) else f"run {run_id!r} is not this job's run"
    if (method, call) == ("GET", "metrics/get-history-bulk-interval"):
        ids = query.get("run_ids", [])
        return None if ids and all(scope.owns(i) for i in ids) else "runs other than this job's"
    if (method, call) == ("POST", "runs/create"):
        return None if fields.get("experiment_id") == scope.experiment_id else "another experiment"
    if (method, call) == ("POST", "runs/search"):
        wanted = fields.get("experiment_ids")
        ours = isinstance(wanted, list) and wanted and all(i == scope.experiment_id for i in wanted)
        return None if ours else "another experiment"
    if (method, call) == ("GET", "experiments/get"):
        return None if fields.get("experiment_id") == scope.experiment_id else "another experiment"
    if (method, call) == ("GET", "experiments/get-by-name"):
        return None if fields.get("experiment_name") == scope.experiment_name else "another experiment"
    return f"{method} {path} is not open to jobs"


class TrackingProxy:
    """A running proxy for one job run (see the module docstring). Thread-safe: each request
    is served on its own thread; the scope it checks against is locked."""

    def __init__(
        self, record: TrackingRecord, token: Callable[[], str], *, upstream: str | None = None
    ) -> None:
        self.record = record
        self.upstream = urlsplit((upstream or rest_uri(record.uri)).rstrip("/"))
        self.secret = secrets.token_urlsafe(32)
        self.scope = Scope(record.experiment_id, record.experiment, {record.run_id})
        self._token = token
        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        except OSError as exc:
            raise TrackingError(f"cannot open the job's tracking endpoint: {exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="tracking-proxy", daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def job_record(self) -> TrackingRecord:
        """The record as the job sees it: this proxy as its tracking server."""
        return self.record.model_copy(update={"uri": self.uri})

    def stop(self) -> None:
        """Stop serving (idempotent); requests in flight finish on their own threads."""
        with contextlib.suppress(Exception):
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> TrackingProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def connection(self) -> http.client.HTTPConnection:
        host, port = self.upstream.hostname or "", self.upstream.port
        if self.upstream.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=UPSTREAM_TIMEOUT_S)
        return http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT_S)

    def node_token(self) -> str:
        return self._token()


def start_tracking_proxy(
    record: TrackingRecord, *, token: Callable[[], str] | None = None, upstream: str | None = None
) -> TrackingProxy:
    """The job's tracking endpoint for `record` (the run `open_tracking_run` returned): forwards
    to `upstream` (default: the REST address of `record.uri`) with `token()` as the bearer
    (default: the node's identity, `node_token_source()`). Raises TrackingError."""
    return TrackingProxy(record, token or node_token_source(), upstream=upstream)


def with_proxied_tracking(spec: JobSpec, proxy: TrackingProxy) -> JobSpec:
    """`spec` as `with_tracking` makes it, pointed at `proxy` and carrying its secret; a job
    with a tracking server of its own is left as it is."""
    tracked = with_tracking(spec, proxy.job_record)
    if tracked is spec:
        return spec
    env = {**tracked.environment_variables, MLFLOW_TRACKING_TOKEN: proxy.secret}
    return tracked.model_copy(update={"environment_variables": env})


def _handler(proxy: TrackingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            _log.debug("tracking proxy: " + format, *args)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self._serve()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

        def _answer(self, status: int, code: str, message: str) -> None:
            data = json.dumps({"error_code": code, "message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            given = self.headers.get("Authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {proxy.secret}".encode()):
                self._drain()
                return self._answer(
                    401, "UNAUTHENTICATED", "this endpoint serves one job; MLFLOW_TRACKING_TOKEN is wrong"
                )
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.close_connection = True  # its body cannot be skipped: end the connection
                return self._answer(411, "BAD_REQUEST", "send the body with a Content-Length")
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            length = int(self.headers.get("Content-Length") or 0)
            is_json = url.path.startswith(API)
            body: bytes | None = self.rfile.read(length) if is_json else None
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                return self._answer(400, "BAD_REQUEST", "the body is not JSON")
            why = refusal(self.command, url.path, query, parsed, proxy.scope)
            if why is not None:
                self._drain(length if body is None else 0)
                return self._answer(403, "PERMISSION_DENIED", f"refused for this job: {why}")
            try:
                token = proxy.node_token()
            except Exception as exc:  # azure-identity raises several kinds
                self._drain(length if body is None else 0)
                return self._answer(
                    502, "TEMPORARILY_UNAVAILABLE", f"no token for the tracking server: {exc}"
                )
            self._forward(url.path, url.query, body, length, token)

        def _drain(self, length: int | None = None) -> None:
            left = int(self.headers.get("Content-Length") or 0) if length is None else length
            while left > 0:
                chunk = self.rfile.read(min(left, CHUNK))
                if not chunk:
                    break
                left -= len(chunk)

        def _forward(self, path: str, query: str, body: bytes | None, length: int, token: str) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROPPED}
            headers["Authorization"] = f"Bearer {token}"
            headers["Content-Length"] = str(length)
            target = proxy.upstream.path + path + (f"?{query}" if query else "")
            conn = proxy.connection()
            try:
                conn.putrequest(self.command, target, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                if body is not None:
                    conn.send(body)
                else:  # an artifact: streamed through
                    left = length
                    while left > 0:
                        chunk = self.rfile.read(min(left, CHUNK))
                        if not chunk:
                            break
                        conn.send(chunk)
                        left -= len(chunk)
                reply = conn.getresponse()
                self._relay(reply, path)
            except OSError as exc:
                self._answer(502, "TEMPORARILY_UNAVAILABLE", f"tracking server unreachable: {exc}")
            finally:
                conn.close()

        def _relay(self, reply: http.client.HTTPResponse, path: str) -> None:
            if path == API + "runs/create" and reply.status == 200:
                data = reply.read()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    proxy.scope.add(json.loads(data)["run"]["info"]["run_id"])
                chunks: Any = [data]
            else:
                chunks = iter(lambda: reply.read(CHUNK), b"")
            self.send_response(reply.status)
            for k, v in reply.getheaders():
                if k.lower() not in _DROPPED:
                    self.send_header(k, v)
            if reply.status in (204, 304):  # no body, by definition
                self.send_header("Content-Length", "0")
                return self.end_headers()
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")

    return Handler
