"""Azurite, the official Azure Storage emulator, as the local job store.

Two ways to run it:

- `start_azurite(data_dir)`: a child process on free loopback ports, stopped by the caller
  (test fixtures).
- `ensure_local_azurite(state_dir)`: the commands' default store. The first command starts a
  detached Azurite whose data lives in `<state_dir>/azurite` and whose pid and ports are kept
  in `<state_dir>/azurite.json`; later commands find it there and reuse it, so a local pool and
  the commands that talk to it share one store. `stop_local_azurite` ends it. Its account
  key is this checkout's own: random, made once, kept in `<state_dir>/azurite.key` (0600) and
  given to Azurite as `AZURITE_ACCOUNTS`, so nothing else on the machine that knows the
  emulator's published key can read or write the local runs.

Failure modes: `StoreError` when the `azurite` executable is missing (run `npm ci`), when it
exits at start (its log is named) or when it does not answer within the start timeout.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from jobrunner.errors import StoreError

# The emulator's well-known development account (published by Microsoft, not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT_S = 30.0
STATE_FILE = "azurite.json"
KEY_FILE = "azurite.key"


def project_root() -> Path:
    """The checkout this package lives in (where `node_modules/` is)."""
    return Path(__file__).resolve().parents[2]


def azurite_executable() -> Path:
    """`node_modules/.bin/azurite` of the project; `StoreError` if it is not installed."""
    exe = project_root() / "node_modules" / ".bin" / "azurite"
    if not exe.exists():
        raise StoreError("Azurite is not installed", fix="run `npm ci` in the project (or `make setup`)")
    return exe


def connection_string(
    blob_port: int, queue_port: int, host: str = "127.0.0.1", key: str = ACCOUNT_KEY
) -> str:
    """The connection string of an Azurite listening on these ports (with account key `key`)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
        f"BlobEndpoint=http://{host}:{blob_port}/{ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT};"
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


@dataclass
class Azurite:
    """A running Azurite: its process id, ports and connection string."""

    pid: int
    blob_port: int
    queue_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    key: str = ACCOUNT_KEY

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, key=self.key)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it (SIGTERM, then SIGKILL); a no-op when it has already exited."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
            return
        stop_process_group(self.pid, timeout)


def stop_process_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group `pid` leads, then SIGKILL it if it outlives `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)


def start_azurite(
    data_dir: Path, *, detached: bool = False, ports: tuple[int, int] | None = None, key: str | None = None
) -> Azurite:
    """Start Azurite (blob + queue) on free loopback ports with its data in `data_dir`.

    `detached` keeps it out of the caller's process tree bookkeeping so it outlives the
    command that started it; `ports` (blob, queue) asks for those ports instead of free ones;
    `key` is the account's key instead of the emulator's published one.
    Raises StoreError when it cannot be started or does not answer in time.
    """
    exe = azurite_executable()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "azurite.log"
    for _ in range(3):  # a free port can be taken between choosing and binding it
        # the table service cannot be turned off: it gets a free port too
        blob_port, queue_port, table_port = (
            (*ports, free_port()) if ports else (free_port(), free_port(), free_port())
        )
        if len({blob_port, queue_port, table_port}) < 3:
            continue
        argv = [
            str(exe), "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--loose",
            "--location", str(data_dir),
            "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
            "--queueHost", "127.0.0.1", "--queuePort", str(queue_port),
            "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
        ]  # fmt: skip
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=data_dir,
                env={**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{key}"} if key else None,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(blob_port) and _answers(queue_port):
                return Azurite(
                    proc.pid, blob_port, queue_port, log, None if detached else proc, key or ACCOUNT_KEY
                )
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise StoreError(f"Azurite did not answer within {START_TIMEOUT_S:.0f} s", fix=f"see {log}")
    raise StoreError("Azurite exited while starting", fix=f"see {log}")


def read_local_state(state_dir: Path) -> Azurite | None:
    """The local Azurite recorded in `state_dir`, if it is still running and answering."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
        found = Azurite(int(data["pid"]), int(data["blob_port"]), int(data["queue_port"]), Path(data["log"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # One started before checkouts had keys still takes the published one.
    found.key = _read_key(state_dir) or ACCOUNT_KEY
    if pid_alive(found.pid) and _answers(found.blob_port) and _answers(found.queue_port):
        return found
    return None


def ensure_local_azurite(state_dir: Path) -> Azurite:
    """The local Azurite of this checkout: the running one, or a new detached one.

    Raises StoreError when a new one cannot be started.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    # Two commands started at once must not start two emulators over the same data.
    with open(state_dir / "azurite.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        running = read_local_state(state_dir)
        if running is not None:
            return running
        started = start_azurite(state_dir / "azurite", detached=True, key=_checkout_key(state_dir))
        record = {"pid": started.pid, "blob_port": started.blob_port, "queue_port": started.queue_port}
        tmp = state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps({**record, "log": str(started.log)}))
        tmp.replace(state_dir / STATE_FILE)
        return started


def _read_key(state_dir: Path) -> str | None:
    with contextlib.suppress(OSError):
        return (state_dir / KEY_FILE).read_text().strip() or None
    return None


def _checkout_key(state_dir: Path) -> str:
    """This checkout's Azurite key: made once (32 random bytes, base64), readable by its owner only."""
    found = _read_key(state_dir)
    if found:
        return found
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    fd = os.open(state_dir / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def stop_local_azurite(state_dir: Path) -> bool:
    """Stop the local Azurite recorded in `state_dir`; False when none was running."""
    running = read_local_state(state_dir)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if running is None:
        return False
    running.stop()
    return True
