"""A doorbell for agents on one machine: the agents of a local pool wake at once when there
is something to look at, instead of at their next beat. A submit rings (the leader takes the
submission in now), an assignment rings (the assigned nodes beat now and start it), and an
attempt ending on a node rings (the leader settles it now).

    bell = Doorbell.open(folder / "local-0.sock")   # an agent, while it serves
    bell.wait(5.0, stop)                             # True when rung, False after 5 s or a stop
    ring(folder)                                     # a submit: wake every agent in `folder`
    ring(folder, ASSIGNED, names=("local-3",))       # an assignment: wake the nodes given it

Each agent binds a Unix datagram socket, `<agent name>.sock`, in the pool's doorbell folder;
`ring` sends one byte to every socket there, or to the named agents': `ASSIGNED` to the nodes
the leader just assigned (they read their blobs), `FOR_LEADER` otherwise (a submit, an
attempt ended: only the leader passes), so that neither a submission nor another node's
assignment makes an idle node read its blob. `Doorbell.rung` says which came.
A ring is only a hint: a woken agent beats and passes as it would have
anyway, so a lost ring (no agent listening, a full socket buffer) costs latency, never a
job. Pools on Azure have no doorbell: their beats and passes are how agents learn of work.

Failure modes: `Doorbell.open` returns None when the socket cannot be bound (a path too
long for a Unix socket, a read-only folder): the agent then only beats. `ring` never raises.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

SUFFIX = ".sock"
FOR_LEADER = b"!"  # a submit or an ended attempt: the leader passes now
ASSIGNED = b"a"  # an assignment: the nodes rung read their blobs now
_SLICE_S = 0.25  # how often a waiting agent looks at its stop event


class Doorbell:
    """One agent's end: a bound datagram socket that `ring` writes to."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self._sock = sock
        self.path = path
        self.rung: set[bytes] = set()  # the kinds of ring taken by the last `wait` that was rung

    @classmethod
    def open(cls, path: Path) -> Doorbell | None:
        """Bind the doorbell at `path` (replacing a stale one); None when that is not possible."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            sock.bind(str(path))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return cls(sock, path)

    def wait(self, timeout_s: float, stop: threading.Event) -> bool:
        """Sleep until rung (True), or `timeout_s` passed or `stop` was set (False)."""
        deadline = time.monotonic() + timeout_s
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self._sock], [], [], min(left, _SLICE_S))
            if readable:
                self.rung = self._drain()
                return True
        return False

    def _drain(self) -> set[bytes]:
        """Take every pending ring: several submits while busy are one wake-up."""
        kinds: set[bytes] = set()
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while data := self._sock.recv(64):
                kinds.update(data[i : i + 1] for i in range(len(data)))
        return kinds

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)


def ring(folder: Path, kind: bytes = FOR_LEADER, *, names: Iterable[str] | None = None) -> int:
    """Wake every agent whose doorbell is in `folder`, or only the agents `names`; returns how
    many were rung."""
    if not folder.is_dir():
        return 0
    rung = 0
    paths = folder.glob(f"*{SUFFIX}") if names is None else (folder / f"{n}{SUFFIX}" for n in names)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for path in paths:
            try:
                sock.sendto(kind, str(path))
            except OSError:
                continue  # a stopped agent's leftover, or its buffer is full of rings already
            rung += 1
    return rung
