"""What every benchmark shares: arguments, a private store, a request-counting proxy in front
of it, a local pool over it, timing helpers and the one output format.

Each benchmark measures trainstack and a baseline in the same run and prints one `Result`:
human-readable by default, one JSON object with `--json`
(`name`, `value`, `baseline`, `ratio`, `unit`, `goal`, `met`, `detail`). `--quick` runs
tiny sizes so the scripts can be checked in seconds; its numbers mean nothing.

Nothing here touches the checkout's own state: every benchmark starts its own Azurite in a
temporary folder and its own pool under a temporary `JOBRUNNER_HOME`.

Store requests are counted on the wire (`CountingProxy`): the agents talk to the proxy, the
proxy to Azurite, so every request of every process is counted, whoever makes it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/NAME.py` from the checkout, installed or not
    sys.path.insert(0, str(REPO))

from jobrunner.client import Client  # noqa: E402
from jobrunner.local.azurite import connection_string, start_azurite  # noqa: E402
from jobrunner.local.pool import start_local_pool, stop_local_pool  # noqa: E402
from jobrunner.local.tracking_server import stop_local_tracking  # noqa: E402
from jobrunner.store.client import HOME_ENV, STORE_ENV, Store  # noqa: E402
from jobrunner.store.status import RunStatus  # noqa: E402

PYTHON = sys.executable


# ------------------------------------------------------------------ arguments and output
def arguments(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> Any:
    """`--json` and `--quick`, plus whatever `extra` adds; returns the parsed namespace."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object for machines")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not speed")
    if extra:
        extra(parser)
    # SIGTERM ends the run like Ctrl-C: the pool, Azurite and temp files are cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return parser.parse_args()


@dataclass(frozen=True)
class Result:
    """One benchmark's outcome: `value` against `baseline`, both in `unit`, measured together."""

    name: str
    value: float
    baseline: float
    unit: str
    goal: str
    met: bool | None  # None: the goal is not a pass/fail number (reported only)
    detail: dict[str, Any] = field(default_factory=dict)
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        ratio = self.value / self.baseline if self.baseline else math.inf
        object.__setattr__(self, "ratio", round(ratio, 4))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "host": host_facts()}


def host_facts() -> dict[str, Any]:
    """What the numbers depend on: cores and the load while they were taken."""
    return {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}


def emit(result: Result, as_json: bool) -> None:
    """Print the result (JSON with `as_json`)."""
    if as_json:
        print(json.dumps(result.to_json(), indent=2, default=str))
        return
    verdict = {True: "goal met", False: "goal MISSED", None: "reported"}[result.met]
    print(f"{result.name}: {result.value:.4g} {result.unit} vs baseline {result.baseline:.4g} {result.unit}")
    print(f"  ratio {result.ratio:.4g}  ({result.goal}: {verdict})")
    for key, value in result.detail.items():
        print(f"  {key}: {json.dumps(value, default=str)}")


def progress(message: str) -> None:
    """A note on stderr while a long benchmark runs (stdout stays the result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; ValueError when empty."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def best_of(runs: int, measure: Callable[[], float]) -> float:
    """The smallest of `runs` measurements (the least disturbed by other work)."""
    return min(measure() for _ in range(runs))


# ------------------------------------------------------------------ counting proxy
class CountingProxy:
    """A loopback TCP proxy per Azurite service that counts the HTTP requests going through.

    It parses request framing (headers, Content-Length or chunked bodies) so that each
    request on a kept-alive connection counts once. `counts()` gives requests by
    `<service> <METHOD>` (e.g. `queue GET`: a receive or a peek); `total()` all of them.
    """

    def __init__(self, blob_port: int, queue_port: int) -> None:
        self._upstream = {"blob": blob_port, "queue": queue_port}
        self._counts: Counter[str] = Counter()
        self._kinds: Counter[str] = Counter()
        self._bytes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(target=self._serve, name="counting-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting proxy did not start")

    @property
    def connection_string(self) -> str:
        return connection_string(self.ports["blob"], self.ports["queue"])

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def kinds(self) -> dict[str, int]:
        """Requests by `<service> <METHOD> <what>`: the container and the kind of blob
        (`sched/nodes`, `runs/status.json`, `runs/logs`, ...), for a cost breakdown."""
        with self._lock:
            return dict(self._kinds)

    def body_bytes(self, service: str = "blob") -> int:
        with self._lock:
            return self._bytes[service]

    def stop(self) -> None:
        """Close the listeners and every open connection, then end the proxy's thread."""
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _shutdown(self) -> None:
        # connections cut mid-request now are expected: no tracebacks for them on stderr
        self._loop.set_exception_handler(lambda _loop, _context: None)
        for server in self._servers:
            server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        for service, port in self._upstream.items():
            server = self._loop.run_until_complete(
                asyncio.start_server(partial(self._client, service=service, port=port), "127.0.0.1", 0)
            )
            self._servers.append(server)
            self.ports[service] = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: str, port: int
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        back = asyncio.create_task(_pipe(up_reader, writer))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method = head.split(b" ", 1)[0].decode("latin-1")
                with self._lock:
                    self._counts[f"{service} {method}"] += 1
                    self._kinds[f"{service} {method} {_kind_of(head)}"] += 1
                up_writer.write(head)
                sent = await _forward_body(head, reader, up_writer)
                with self._lock:
                    self._bytes[service] += sent
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await back


def _kind_of(head: bytes) -> str:
    """The kind of thing a request names: its container and the blob's first folder, or for
    a run's files the file's kind (`status.json`, `logs`, `outputs`, ...)."""
    target = head.split(b" ", 2)[1].decode("latin-1").split("?", 1)[0]
    parts = [p for p in target.split("/") if p][1:]  # past the account
    if not parts:
        return "account"
    if len(parts) == 1:
        return parts[0]
    rest = parts[1:]
    if parts[0] == "runs" and len(rest) >= 3:
        return f"runs/{rest[2]}"
    return f"{parts[0]}/{rest[0]}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _forward_body(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Pass one request's body on; returns its length."""
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:] if b":" in line)
    }
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            size = int(size_line.split(b";")[0], 16)
            writer.write(await reader.readexactly(size + 2))  # the chunk and its CRLF
            total += size
            if size == 0:
                return total
    remaining = total = int(headers.get(b"content-length", b"0") or 0)
    while remaining:
        data = await reader.read(min(remaining, 1 << 20))
        if not data:
            raise asyncio.IncompleteReadError(b"", remaining)
        writer.write(data)
        remaining -= len(data)
        await writer.drain()
    return total


# ------------------------------------------------------------------ store and pool
@dataclass
class Workspace:
    """A benchmark's private world: a temp folder, its Azurite and (optionally) a proxy."""

    root: Path
    azurite_connection: str
    proxy: CountingProxy | None

    @property
    def connection(self) -> str:
        """What clients and agents use: the proxy when counting, else Azurite itself."""
        return self.proxy.connection_string if self.proxy else self.azurite_connection

    def store(self) -> Store:
        return Store.connect(self.connection)

    def client(self, pool: str = "local") -> Client:
        return Client(self.store(), pool=pool)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@contextlib.contextmanager
def workspace(*, count_requests: bool = False) -> Iterator[Workspace]:
    """A temp folder with a private Azurite; JOBRUNNER_STORE/HOME point at them meanwhile."""
    root = Path(tempfile.mkdtemp(prefix="trainstack-bench-"))
    server = start_azurite(root / "azurite")
    proxy = CountingProxy(server.blob_port, server.queue_port) if count_requests else None
    ws = Workspace(root, server.connection_string, proxy)
    saved = {k: os.environ.get(k) for k in (STORE_ENV, HOME_ENV, "JOBRUNNER_POOL")}
    os.environ[STORE_ENV] = ws.connection
    os.environ[HOME_ENV] = str(ws.folder("home"))
    os.environ.pop("JOBRUNNER_POOL", None)
    try:
        yield ws
    finally:
        # the local pool's tracking server, started on demand in this home: `local_pool` stops
        # the agents only, and a server left behind (with its job workers) loads every later run
        with contextlib.suppress(Exception):  # never at the cost of the run's figures
            stop_local_tracking(ws.folder("home"))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if proxy:
            proxy.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def local_pool(nodes: int, pool: str = "local") -> Iterator[None]:
    """`nodes` real agents (`jobrunner local-pool`) over the workspace's store, stopped after."""
    start_local_pool(nodes, pool)
    try:
        wait_for_agents(Store.from_env(start_local=False), pool, nodes)
        yield
    finally:
        stop_local_pool(pool, stop_store=False, grace_s=10)


def wait_for_agents(store: Store, pool: str, nodes: int, timeout_s: float = 120) -> None:
    """Until `nodes` agents of `pool` have said they are idle; TimeoutError otherwise."""
    from jobrunner.scheduler.azure_store import AzurePoolStore
    from jobrunner.scheduler.report import read_nodes

    sched = AzurePoolStore(store, pool)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(n.state == "idle" and n.heartbeat_age_s < 30 for n in read_nodes(sched)) >= nodes:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{nodes} agents of pool {pool} did not come up in {timeout_s:.0f} s")


def wait_until_done(client: Client, run_id: str, timeout_s: float = 600, poll_s: float = 0.2) -> RunStatus:
    """The run's final status; TimeoutError if it does not end in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.status(run_id)
        if status.state.terminal:
            return status
        time.sleep(poll_s)
    raise TimeoutError(f"run {run_id} did not finish within {timeout_s:.0f} s")


def write_job(folder: Path, name: str, text: str) -> Path:
    """A job file in `folder` (made when missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def timed_command(argv: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command to its end; (wall seconds, the finished process). Raises on failure."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, done


# ------------------------------------------------------------------ process sampling
def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agents_cpu_s(pool: str = "local") -> float:
    """CPU seconds the local pool's agent processes have used so far (their jobs not included)."""
    from jobrunner.local.pool import read_local_pool

    state = read_local_pool(pool)
    return sum(cpu_seconds(a.pid) for a in state.running()) if state else 0.0


def rss_mib(pid: int) -> float:
    """Resident memory of a live process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")
