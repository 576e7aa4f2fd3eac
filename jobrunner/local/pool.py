"""A pool of agents on this machine: detached `jobrunner agent` processes over one store.

    start_local_pool(nodes=2)   -> LocalPool   (agents `local-0`, `local-1`, ...)
    read_local_pool("local")    -> LocalPool | None
    stop_local_pool()           -> names of the pools stopped (and the local Azurite)

The store is `JOBRUNNER_STORE` when set, else the local Azurite (started on demand). The
agents inherit this process's environment, with the store made explicit so they use the
same one. Likewise the tracking server: `JOBRUNNER_TRACKING_URI` when set (`none`: no
tracking), else the local MLflow server (`jobrunner.local.tracking_server`, started on demand and
stopped with the local Azurite). Each agent works under `<JOBRUNNER_HOME>/pool/<name>/`, writes
its log lines (`jobrunner.node.agent_logging`, at the pool's `log_level`) to
`<JOBRUNNER_HOME>/pool/<name>.log` (rotated, 0600) and whatever else it prints (a traceback
that ends it) to `<name>.out` beside it; both outlive `stop_local_pool`. The pool's node count
is recorded in the store (submit refuses larger jobs) and its agents' pids in
`<JOBRUNNER_HOME>/pool/<pool>.json`.
Local agents use short poll intervals: a local store costs nothing per request. They are
also woken at once by a submit from this machine, and by the leader when it assigns them
work (`jobrunner.node.doorbell`): their sockets are in `<JOBRUNNER_HOME>/pool/<pool>.doorbells/`.
So an idle node looks at its blob itself only 10 heartbeats after it reported, then at
doubling gaps up to 40 (`jobrunner.node.agent.DOORBELL_LOOK_FACTOR`), for a ring it missed.

Failure modes: ConfigError when a pool of that name already runs with another size;
StoreError when the store cannot be reached or started; LaunchError when an agent exits at
once (its files are named).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from jobrunner.errors import ConfigError, LaunchError
from jobrunner.local.azurite import ensure_local_azurite, pid_alive, stop_local_azurite
from jobrunner.local.tracking_server import TRACKING_ENV, ensure_local_tracking, stop_local_tracking
from jobrunner.node.agent_logging import DEFAULT_LEVEL, parse_level
from jobrunner.node.doorbell import SUFFIX
from jobrunner.store.client import STORE_ENV, Store, home_dir
from jobrunner.store.pool_config import PoolConfig, write_pool_config

# a local agent found lost 30 s after it went silent: it writes its blob every 6 s for that
# (and the leader renews a 30 s lease every 10 s); the doorbell, not the beat, starts work
LOCAL_AGENT_ARGS = ("--heartbeat-s", "1", "--stale-after-s", "30")


class LocalAgent(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    pid: int


class LocalPool(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    store: str
    agents: tuple[LocalAgent, ...]

    def running(self) -> tuple[LocalAgent, ...]:
        return tuple(a for a in self.agents if pid_alive(a.pid))


def _pool_dir() -> Path:
    return home_dir() / "pool"


def doorbell_folder(pool: str) -> Path:
    """Where the agents of local pool `pool` keep their doorbells (`jobrunner.node.doorbell`)."""
    return _pool_dir() / f"{pool}.doorbells"


def _state_file(pool: str) -> Path:
    return _pool_dir() / f"{pool}.json"


def agent_log_file(agent: str) -> Path:
    """Where the local agent `agent` writes its log lines (see the module docstring)."""
    return _pool_dir() / f"{agent}.log"


def agent_output_file(agent: str) -> Path:
    """Where the local agent's stdout and stderr go: what it prints outside its log."""
    return _pool_dir() / f"{agent}.out"


def _store_target() -> tuple[str, bool]:
    """(store target, whether it is this checkout's own local Azurite)."""
    target = os.environ.get(STORE_ENV)
    if target:
        return target, False
    return ensure_local_azurite(home_dir()).connection_string, True


def _tracking_target() -> str:
    """The tracking URI the agents get (`none` when tracking is off)."""
    return os.environ.get(TRACKING_ENV) or ensure_local_tracking(home_dir()).uri


def read_local_pool(pool: str) -> LocalPool | None:
    """The local pool of that name, as recorded when it started (None if never started or stopped)."""
    try:
        return LocalPool.model_validate_json(_state_file(pool).read_text())
    except (OSError, ValueError):
        return None


def _write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only (0600): the state holds the store's connection
    string, key included."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _private_append(path: Path) -> int:
    """A descriptor appending to `path`, made 0600 (an agent's traceback may name anything)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def start_local_pool(nodes: int, pool: str = "local", *, log_level: str = DEFAULT_LEVEL) -> LocalPool:
    """Start `nodes` agents named `<pool>-0`... (or return the pool already running with that
    size), each logging at `log_level` (ConfigError for an unknown one)."""
    parse_level(log_level)  # refused here, not by agents that exit at once
    if nodes < 1:
        raise ConfigError("--nodes must be at least 1", fix="e.g. `jobrunner local-pool start --nodes 2`")
    existing = read_local_pool(pool)
    if existing is not None and existing.running():
        if len(existing.running()) == nodes:
            return existing
        raise ConfigError(
            f"local pool {pool!r} already runs with {len(existing.running())} agent(s)",
            fix="`jobrunner local-pool stop` first",
        )
    target, _ = _store_target()
    store = Store.connect(target)
    from jobrunner.node.facts import container_runtime_works

    write_pool_config(
        store, PoolConfig(name=pool, max_nodes=nodes, kind="local", containers=container_runtime_works())
    )
    env = {**os.environ, STORE_ENV: target, TRACKING_ENV: _tracking_target(), "PYTHONUNBUFFERED": "1"}
    folder = _pool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    agents: list[LocalAgent] = []
    for i in range(nodes):
        name = f"{pool}-{i}"
        argv = [
            sys.executable, "-m", "jobrunner", "agent", "--pool", pool, "--name", name,
            "--work-dir", str(folder / name), "--doorbell", str(doorbell_folder(pool) / f"{name}{SUFFIX}"),
            "--log-file", str(agent_log_file(name)), "--log-level", log_level, *LOCAL_AGENT_ARGS,
        ]  # fmt: skip
        with open(_private_append(agent_output_file(name)), "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        agents.append(LocalAgent(name=name, pid=proc.pid))
    state = LocalPool(name=pool, store=target, agents=tuple(agents))
    _write_private(_state_file(pool), state.model_dump_json(indent=2))
    time.sleep(0.5)
    dead = [a for a in agents if not pid_alive(a.pid)]
    if dead:
        stop_local_pool(pool, stop_store=False)
        raise LaunchError(
            f"agent {dead[0].name} exited at start",
            fix=f"see {agent_output_file(dead[0].name)} and {agent_log_file(dead[0].name)}",
        )
    return state


def _stop_agent(agent: LocalAgent, grace_s: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(agent.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_alive(agent.pid):
            time.sleep(0.1)
        if not pid_alive(agent.pid):
            return


def stop_local_pool(pool: str | None = None, *, stop_store: bool = True, grace_s: float = 15.0) -> list[str]:
    """Stop the agents of `pool` (every local pool when None), and the local Azurite when
    `stop_store` and the pools used it. Returns the pools stopped."""
    folder = _pool_dir()
    names = [pool] if pool else sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []
    stopped = []
    for name in names:
        state = read_local_pool(name)
        if state is None:
            continue
        for agent in state.agents:
            _stop_agent(agent, grace_s)
        _state_file(name).unlink(missing_ok=True)
        stopped.append(name)
    others_left = folder.exists() and any(folder.glob("*.json"))
    if stop_store and not others_left and not os.environ.get(STORE_ENV):
        stop_local_azurite(home_dir())
    if stop_store and not others_left and not os.environ.get(TRACKING_ENV):
        stop_local_tracking(home_dir())
    return stopped
