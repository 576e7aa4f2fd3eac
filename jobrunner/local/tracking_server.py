"""A real MLflow tracking server as the local pools' tracking server, started on demand.

Like the local Azurite (`jobrunner.local.azurite`), two ways to run it:

- `start_tracking_server(data_dir)`: a child process on a free loopback port, stopped by the
  caller (test fixtures).
- `ensure_local_tracking(state_dir)`: what a local pool uses when `JOBRUNNER_TRACKING_URI` is
  unset. The first pool starts a detached `mlflow server` whose backend is
  `<state_dir>/mlflow/mlflow.db` (SQLite) and whose artifacts it serves (jobs upload them over
  HTTP, with no credential): a job run's beside its outputs in the local pools' store
  (`jobrunner.tracking.artifacts`), anything else under `<state_dir>/mlflow/artifacts`; its pid
  and port are kept in
  `<state_dir>/mlflow.json`, and a later start reuses the same port so that the tracking URI
  recorded with each run keeps working. `stop_local_tracking` ends it.

Failure modes: `TrackingError` when MLflow is not installed (run `make setup`), when the
server exits at start (its log is named) or when it does not answer within the start timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jobrunner.errors import TrackingError
from jobrunner.local.azurite import free_port, pid_alive, read_local_state, stop_process_group
from jobrunner.store.client import STORE_ENV

START_TIMEOUT_S = 120.0  # the first start creates the SQLite schema: seconds on a busy machine
STATE_FILE = "mlflow.json"
# Where a local pool's agents look for the tracking server; `none` turns tracking off.
TRACKING_ENV = "JOBRUNNER_TRACKING_URI"
NO_TRACKING = "none"
# The job runs' artifact repository (`jobrunner.tracking.artifacts`, which imports MLflow) and
# the server's environment that configures it.
ARTIFACTS_SCHEME = "jobrunner-runs"
ARTIFACTS_DESTINATION = f"{ARTIFACTS_SCHEME}:/"
BACKEND_ENV = "JOBRUNNER_TRACKING_BACKEND"  # the server's backend, to read the runs' tags
ARTIFACTS_ENV = "JOBRUNNER_TRACKING_ARTIFACTS"  # the local folder for every other artifact
PORT_PATIENCE_S = 15.0  # how long a restart waits for the port a stopped server still holds
# Detached servers outlive their starter; holding their Popen keeps Python from warning that a
# child it forgot is still running.
_DETACHED: list[subprocess.Popen[bytes]] = []


@dataclass
class TrackingServer:
    """A running MLflow tracking server: its process id, port and log."""

    pid: int
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it and its workers (SIGTERM, then SIGKILL); a no-op when it has exited."""
        stop_process_group(self.pid, timeout)
        if self.process is not None:
            self.process.wait(timeout)


def answers(uri: str) -> bool:
    """Whether an MLflow server at `uri` says it is healthy."""
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
        return bool(reply.status == 200)
    return False


def start_tracking_server(
    data_dir: Path, *, detached: bool = False, port: int | None = None, store: str | None = None
) -> TrackingServer:
    """Start `mlflow server` on loopback with its backend and artifacts in `data_dir`.

    With `store` (a job store's connection string), the artifacts of job runs tracked in that
    store go beside their outputs in it (`jobrunner.tracking.artifacts`). `port` asks for that
    port (a restart keeps the URI); raises TrackingError when MLflow or the project's artifact
    repository is not installed, the server exits while starting or does not answer in time.
    """
    if importlib.util.find_spec("mlflow.server") is None:
        raise TrackingError(
            "the MLflow tracking server is not installed",
            fix="run `make setup` (installs mlflow), or set JOBRUNNER_TRACKING_URI to a server",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "mlflow.log"
    chosen = port or free_port()
    backend = f"sqlite:///{data_dir / 'mlflow.db'}"
    destination, env = str(data_dir / "artifacts"), dict(os.environ)
    if store is not None:
        _check_artifact_repository()
        destination = ARTIFACTS_DESTINATION
        env |= {STORE_ENV: store, BACKEND_ENV: backend, ARTIFACTS_ENV: str(data_dir / "artifacts")}
    argv = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
        "--artifacts-destination", destination, "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(chosen), "--workers", "1",
    ]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=data_dir, env=env,
        )  # fmt: skip
    if detached:
        _DETACHED.append(proc)
    server = TrackingServer(proc.pid, chosen, log, None if detached else proc)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if answers(server.uri):
            return server
        time.sleep(0.25)
    if proc.poll() is None:
        server.stop()
        raise TrackingError(
            f"the MLflow server did not answer within {START_TIMEOUT_S:.0f} s", fix=f"see {log}"
        )
    raise TrackingError("the MLflow server exited while starting", fix=f"see {log}")


def _check_artifact_repository() -> None:
    """MLflow finds the job runs' artifact repository through the project's installed entry
    point: a checkout whose install predates it would start a server that fails every upload."""
    from importlib.metadata import entry_points

    if not any(e.name == ARTIFACTS_SCHEME for e in entry_points(group="mlflow.artifact_repository")):
        raise TrackingError(
            f"MLflow's artifact repository `{ARTIFACTS_SCHEME}` is not installed",
            fix="run `make setup` (or `.venv/bin/pip install -e .`) to register the project's entry points",
        )


def _artifact_store(state_dir: Path) -> str | None:
    """The store whose runs the local server keeps artifacts for: the local pools' own
    (`JOBRUNNER_STORE` when it is a connection string, else the local Azurite when it runs)."""
    target = os.environ.get(STORE_ENV, "")
    if "=" in target and ";" in target:
        return target
    if target:
        return None  # an account URL signs in with an identity the server does not have
    running = read_local_state(state_dir)
    return running.connection_string if running is not None else None


def read_local_tracking(state_dir: Path) -> TrackingServer | None:
    """The local tracking server recorded in `state_dir`, if it is running and answering."""
    recorded = _recorded(state_dir)
    if recorded is not None and pid_alive(recorded.pid) and answers(recorded.uri):
        return recorded
    return None


def _recorded(state_dir: Path) -> TrackingServer | None:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
        return TrackingServer(int(data["pid"]), int(data["port"]), Path(data["log"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_local_tracking(state_dir: Path) -> TrackingServer:
    """The local tracking server of this checkout: the running one, or a new detached one on
    the port it had before (when that is free). Raises TrackingError when it cannot start."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "mlflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pools starting at once share one server
        running = read_local_tracking(state_dir)
        if running is not None:
            return running
        before = _recorded(state_dir)
        port = before.port if before is not None else None
        if port is not None and not _port_frees(port):
            # runs keep the URI they were tracked under: a new port would orphan them all
            raise TrackingError(
                f"port {port} of the local tracking server is taken by another program",
                fix=f"stop what listens on it, or remove {state_dir / STATE_FILE} to start on a new port "
                "(the runs tracked until now are then not readable)",
            )
        started = start_tracking_server(
            state_dir / "mlflow", detached=True, port=port, store=_artifact_store(state_dir)
        )
        tmp = state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps({"pid": started.pid, "port": started.port, "log": str(started.log)}))
        tmp.replace(state_dir / STATE_FILE)
        return started


def revive_local_tracking(uri: str, state_dir: Path) -> None:
    """Start the local tracking server again when `uri` is its recorded address and it is down
    (after `jobrunner local-pool stop`), so that the runs it holds can still be read. Any other
    URI is left alone. Raises TrackingError when it cannot start."""
    recorded = _recorded(state_dir)
    if recorded is not None and recorded.uri == uri.rstrip("/") and not answers(uri):
        ensure_local_tracking(state_dir)


def _port_frees(port: int) -> bool:
    """Whether `port` is free, or frees within PORT_PATIENCE_S (a server just stopped may still
    hold it); the server binds with SO_REUSEADDR, so this does too."""
    import socket

    deadline = time.monotonic() + PORT_PATIENCE_S
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
        time.sleep(0.25)


def stop_local_tracking(state_dir: Path) -> bool:
    """Stop the local tracking server recorded in `state_dir` (its port stays recorded for the
    next start); False when none was running."""
    running = read_local_tracking(state_dir)
    if running is None:
        return False
    running.stop()
    return True
