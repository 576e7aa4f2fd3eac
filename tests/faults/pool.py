"""A pool of real `jobrunner agent` processes with short timeouts, for fault injection.

Each test starts its own (never the shared 2-agent pool): agents get killed, preempted and cut
off from the store here. Beats every 0.5 s and a 4 s stale limit make a lost node show within
seconds (the scheduler's lease is Azure's shortest, 15 s, so a killed leader is replaced
within about 20 s); outputs sync every second so a checkpoint reaches the store soon after
it is written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobrunner.errors import TrainstackError
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.store.client import RUNS, Store
from jobrunner.store.pool_config import PoolConfig, write_pool_config
from jobrunner.store.status import RunRef
from tests.runner.conftest import REPO, Cli

FAST_AGENT = (
    "--heartbeat-s", "0.5", "--stale-after-s", "4", "--status-poll-s", "0.5", "--sync-s", "1",
    "--terminate-grace-s", "3",
)  # fmt: skip


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first found through /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            ppid = int(text.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def wait_for(what: str, check: Callable[[], object], timeout: float = 60, every: float = 0.3) -> object:
    """Poll `check` until it returns something truthy; AssertionError naming `what` at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@dataclass
class FaultPool:
    """`size` agents named `<name>-0`... over `store`; `kill` and `stop` them."""

    store: str
    home: Path
    name: str
    size: int
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()  # after FAST_AGENT: a test's own timings win
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "JOBRUNNER_STORE": self.store, "JOBRUNNER_HOME": str(self.home),
               "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **self.extra_env}  # fmt: skip
        env.pop("JOBRUNNER_POOL", None)
        return env

    @property
    def cli(self) -> Cli:
        return Cli(self.env, self.home)

    def agent_names(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.size)]

    def start(self) -> FaultPool:
        self.home.mkdir(parents=True, exist_ok=True)
        write_pool_config(Store.connect(self.store), PoolConfig(name=self.name, max_nodes=self.size))
        for agent in self.agent_names():
            self.start_agent(agent)
        return self

    def start_agent(self, agent: str) -> None:
        """Start (or restart, after `kill`) the agent named `agent`: a new incarnation."""
        argv = [sys.executable, "-m", "jobrunner", "agent", "--pool", self.name, "--name", agent,
                "--work-dir", str(self.home / agent), "--log-file", str(self.home / f"{agent}.agent.log"),
                *FAST_AGENT, *self.extra_args]  # fmt: skip
        with open(self.home / f"{agent}.log", "ab") as log:
            self.procs[agent] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True,
            )  # fmt: skip

    def log(self, agent: str) -> str:
        """What the agent printed (its stdout and stderr)."""
        return (self.home / f"{agent}.log").read_text(errors="replace")

    def logged(self, agent: str) -> str:
        """What the agent logged (`--log-file`)."""
        path = self.home / f"{agent}.agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def alive(self, agent: str) -> bool:
        return self.procs[agent].poll() is None

    def kill(self, agent: str) -> None:
        """The node vanishes: SIGKILL the agent and every process it started, at once."""
        proc = self.procs[agent]
        victims = [proc.pid, *descendants(proc.pid)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)

    def dump(self, *runs: RunRef) -> str:
        """What happened, for a failed test: each run's status.json and agent notes of every
        attempt, the scheduler's blobs (nodes, pending, run documents, its report) and every
        agent's own log."""
        store = Store.connect(self.store)
        parts: list[str] = []

        def blob(container: str, name: str) -> str:
            try:
                return store.get(container, name)[0].decode(errors="replace")
            except TrainstackError as exc:
                return f"({exc})"

        for ref in runs:
            parts.append(f"===== {ref.status_blob}\n{blob(RUNS, ref.status_blob)}")
            for info in store.list(RUNS, ref.blob("logs/")):
                if "/agent." in info.name:
                    parts.append(f"===== {info.name}\n{blob(RUNS, info.name)}")
        sched = AzurePoolStore(store, self.name)
        with contextlib.suppress(TrainstackError):
            for entry in sched.list("").entries:
                shown = (
                    sched.get(entry.name)[0].decode() if entry.name.startswith(("runs/", "report")) else ""
                )
                parts.append(f"===== sched/{entry.name} {entry.metadata}\n{shown}")
        for agent in self.agent_names():
            parts.append(f"===== {agent}.log\n{self.log(agent)}{self.logged(agent)}")
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for agent, proc in self.procs.items():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill(agent)
