"""A worker thread for one kind of slow work beside a supervisor that must never wait.

    sync = Worker("output-sync", lambda: out.sync(), on_error=note)
    sync.kick()        from the supervisor: run the work soon; returns at once
    sync.close()       no more kicks; wait (bounded) for the run under way

The queue is bounded at one: a kick while the work runs is remembered once, and further
kicks meanwhile fold into it (the work always does everything due, e.g. a sync sends all
that changed), so a slow store makes the work lag, never the supervisor or memory grow.
`busy` says whether a run is under way or due, for a caller that would rather skip a kick
(a status poll whose last answer is still coming).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from jobrunner.errors import TrainstackError


class Worker:
    def __init__(
        self,
        name: str,
        work: Callable[[], None],
        *,
        on_error: Callable[[TrainstackError], None] | None = None,
    ) -> None:
        self._work = work
        self._on_error = on_error
        self._due = threading.Event()
        self._closed = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._due.is_set() or not self._idle.is_set()

    def kick(self) -> None:
        """Ask for a run (at most one more is queued); never blocks."""
        if not self._closed.is_set():
            self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            if self._closed.is_set():
                return
            self._idle.clear()
            self._due.clear()
            try:
                self._work()
            except TrainstackError as exc:
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                self._idle.set()

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking kicks (a queued one is dropped); wait up to `timeout` for the run under
        way. True when the worker is idle now."""
        self._closed.set()
        self._due.set()
        return self._idle.wait(timeout)
