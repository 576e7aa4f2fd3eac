"""Executing a `LaunchPlan` on this node: write its files, run the preparation, start the
processes, stream their output by the chunk, stop them all on the first failure, a timeout
or a cancel, and name the earliest failure as the root cause.

Output goes to the sink as the chunks read from each pipe (`LogSink`), never split into
lines on the way: the spool and the per-process files only append bytes. Lines are cut only
where something needs lines (`TailLines`: the last lines of stderr for the failure reason,
cut from the end of each chunk only; `LineSplitter`: a caller's `ByLine` adapter), each at
most `MAX_LINE_BYTES`, so a job printing a 200 MB line without a newline costs a few reads
and 64 KiB of memory, not a quadratic join.

Each process gets its own process group (session), so stopping one stops the whole tree it
started (torchrun's workers, mpirun's ranks, a shell's children): SIGTERM to the group, then
SIGKILL after `grace_s`. A `docker run` process's container is removed as well, since
killing the client alone leaves the container running.

Processes that run on the node itself find the agent's own Python environment first on
`PATH`, so `python` and `torchrun` in a command are the ones the agent was installed with.
Every process gets `jobrunner.node.isolation.job_environment`: the plan's variables and an
allow-list of the agent's (never its store credential); with a job `user`, processes on the
node run as that user and containers get `--user`.

The root cause is written, when asked, as JSON to an error file in the spirit of
torchelastic's: `{"root_cause": {...}, "failures": [...]}`; a process that wrote its own
torchelastic error file (`TORCHELASTIC_ERROR_FILE`, e.g. torchrun or a script using
`@record`) has that file's content under `child_error`.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from jobrunner.api import LaunchPlan, ProcessPlan
from jobrunner.errors import LaunchError
from jobrunner.node.isolation import JobUser, job_environment, open_no_follow, read_job_file

TORCHELASTIC_ERROR_FILE = "TORCHELASTIC_ERROR_FILE"
GRACE_S = 30.0  # torchelastic's: what a process gets between SIGTERM and SIGKILL
_TAIL_LINES = 20
MAX_LINE_BYTES = 64 * 1024  # a longer line is cut there where lines are needed (the rest is dropped)
PIPE_BYTES = 1 << 20  # each output pipe's size (Linux's default is 64 KiB)
# A drained pipe is read again after this (see `_pump`), for a PIPE_BYTES pipe; after a read
# of at most TRICKLE_BYTES (a line or a few), after READ_NAP_LONG_S.
READ_NAP_S = 0.02
READ_NAP_LONG_S = 0.05
TRICKLE_BYTES = 4096
POLL_S = 0.05  # how often the launcher looks at its processes' exits, the deadline and a cancel


class LogSink(Protocol):
    """Receives a process's output as the bytes read from its pipe, in order per stream, cut
    anywhere (mid-line, mid-character); an empty `data` marks the end of that stream. Calls
    are serialized (one at a time) but come from reader threads: return quickly, buffer
    anything slow."""

    def __call__(self, log_name: str, stream: str, data: bytes) -> None: ...


class LineSink(Protocol):
    """Receives whole lines (decoded, without newline or carriage return)."""

    def __call__(self, log_name: str, stream: str, line: str) -> None: ...


class LineSplitter:
    """Cuts a byte stream into lines for `emit` (without the newline and a trailing `\\r`).

    A line longer than `cap` bytes is emitted with its first `cap` bytes only: memory stays
    bounded however long a line runs. `end()` emits a last line that had no newline.
    """

    def __init__(self, emit: Callable[[bytes], None], cap: int = MAX_LINE_BYTES) -> None:
        self._emit = emit
        self._cap = cap
        self._pending = bytearray()

    def feed(self, data: bytes) -> None:
        *whole, rest = data.split(b"\n")
        if whole:
            first, *others = whole
            self._add(first)
            self._flush()
            for line in others:
                self._emit(line[: self._cap].removesuffix(b"\r"))
        self._add(rest)

    def _add(self, part: bytes) -> None:
        room = self._cap - len(self._pending)
        if room > 0:
            self._pending += part[:room]

    def _flush(self) -> None:
        line = bytes(self._pending).removesuffix(b"\r")
        self._pending.clear()
        self._emit(line)

    def end(self) -> None:
        if self._pending:
            self._flush()


class TailLines(LineSplitter):
    """Keeps the last lines of a byte stream in `lines` (a deque with a `maxlen`), cut like
    `LineSplitter`'s, splitting only the end of each chunk: a chunk of ten thousand lines
    costs one `rsplit`, not a line object each."""

    def __init__(self, lines: collections.deque[bytes], cap: int = MAX_LINE_BYTES) -> None:
        assert lines.maxlen is not None
        super().__init__(lines.append, cap)
        self.lines = lines
        self._keep = lines.maxlen

    def feed(self, data: bytes) -> None:
        parts = data.rsplit(b"\n", self._keep + 1)
        if len(parts) > self._keep + 1:
            # at least `maxlen` whole lines after the first part: it and the pending line are gone
            del parts[0]
            self._pending.clear()
        else:
            self._add(parts.pop(0))
            if parts:
                self._flush()
        if parts:
            *whole, rest = parts
            self.lines.extend(line[: self._cap].removesuffix(b"\r") for line in whole)
            self._add(rest)


class ByLine:
    """A `LogSink` that hands whole lines to a `LineSink` (one `LineSplitter` per stream)."""

    def __init__(self, sink: LineSink, cap: int = MAX_LINE_BYTES) -> None:
        self._sink = sink
        self._cap = cap
        self._splitters: dict[tuple[str, str], LineSplitter] = {}

    def __call__(self, log_name: str, stream: str, data: bytes) -> None:
        key = (log_name, stream)
        splitter = self._splitters.get(key)
        if splitter is None:
            splitter = self._splitters[key] = LineSplitter(
                lambda raw: self._sink(log_name, stream, raw.decode("utf-8", "replace")), self._cap
            )
        if data:
            splitter.feed(data)
        else:
            splitter.end()
            del self._splitters[key]


@dataclass(frozen=True)
class ProcessResult:
    """How one process ended. `exit_code` < 0 means killed by that signal (`-15`: SIGTERM)."""

    log_name: str
    rank: int | None
    exit_code: int
    started_at: float  # time.time()
    ended_at: float
    stopped: bool = False  # stopped by us (after another's failure, a timeout or a cancel)
    stderr_tail: tuple[str, ...] = ()
    child_error: Mapping[str, object] | None = None

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 and not self.stopped


@dataclass(frozen=True)
class LaunchResult:
    """The preparation's and every process's result; `root_cause` is the earliest failure."""

    processes: tuple[ProcessResult, ...]
    preparation: ProcessResult | None = None
    timed_out: bool = False
    canceled: bool = False
    root_cause: ProcessResult | None = None

    @property
    def succeeded(self) -> bool:
        ran = [*self.processes, *([self.preparation] if self.preparation else [])]
        return not self.timed_out and not self.canceled and all(r.exit_code == 0 for r in ran)

    @property
    def exit_codes(self) -> dict[str, int]:
        return {r.log_name: r.exit_code for r in self.processes}


@dataclass
class _Running:
    plan: ProcessPlan
    popen: subprocess.Popen[bytes]
    started_at: float
    error_file: Path | None
    readers: list[threading.Thread] = field(default_factory=list)
    tail: collections.deque[bytes] = field(default_factory=lambda: collections.deque(maxlen=_TAIL_LINES))
    ended_at: float | None = None  # when it exited (set by its waiter thread), time.time()
    exited: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False

    def wait(self) -> None:
        """Reap the process and note when it ended: the root cause is the earliest exit,
        not the first one the launcher happened to look at."""
        self.popen.wait()
        self.ended_at = time.time()
        self.exited.set()


def run_plan(
    plan: LaunchPlan,
    sink: LogSink,
    *,
    timeout: float | None = None,
    cancel: threading.Event | None = None,
    grace_s: float = GRACE_S,
    error_file: str | Path | None = None,
    on_processes: Callable[[], None] | None = None,
    user: JobUser | None = None,
    child_errors_dir: Path | None = None,
) -> LaunchResult:
    """Run `plan` to the end and say how it went.

    `timeout` (seconds, for preparation and processes together) and `cancel` (set it from
    another thread) stop every process; so does the first process that exits non-zero.
    `on_processes` is called once the preparation command (if any) succeeded, just before the
    job's processes start (the run moves from preparing to running then). `user`: the
    unprivileged user the processes run as (None: the agent's own); `child_errors_dir`: where
    processes write their own error files (default: beside `error_file`; one the user may
    write when there is one).
    Raises LaunchError when a file cannot be written or a process cannot be started (a
    missing program or working directory); anything already started is stopped first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    cancel = cancel or threading.Event()
    lock = threading.Lock()
    _write_files(plan.files)
    errors_dir = child_errors_dir or (Path(error_file).parent if error_file else None)
    prep: ProcessResult | None = None
    if plan.preparation is not None:
        (prep,), timed_out = _run_group(
            [plan.preparation], sink, lock, deadline, cancel, grace_s, errors_dir, user
        )
        if prep.exit_code != 0 or timed_out or cancel.is_set():
            return _finish(LaunchResult((), prep, timed_out, cancel.is_set(), _root(prep)), error_file)
    if on_processes is not None:
        on_processes()
    results, timed_out = _run_group(
        list(plan.processes), sink, lock, deadline, cancel, grace_s, errors_dir, user
    )
    root = _root(prep, *results)
    return _finish(LaunchResult(tuple(results), prep, timed_out, cancel.is_set(), root), error_file)


def _root(*results: ProcessResult | None) -> ProcessResult | None:
    failed = [r for r in results if r is not None and r.failed]
    return min(failed, key=lambda r: r.ended_at) if failed else None


def _finish(result: LaunchResult, error_file: str | Path | None) -> LaunchResult:
    if error_file is not None and (result.root_cause or result.timed_out or result.canceled):
        failures = [asdict(r) for r in (result.preparation, *result.processes) if r is not None and r.failed]
        body = {
            "root_cause": asdict(result.root_cause) if result.root_cause else None,
            "failures": failures,
            "timed_out": result.timed_out,
            "canceled": result.canceled,
        }
        path = Path(error_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=2, default=str), encoding="utf-8")
    return result


def _write_files(files: Mapping[str, str]) -> None:
    for name, text in files.items():
        try:
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            # The folder may be the job user's: a link left there must not be followed.
            fd = open_no_follow(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise LaunchError(f"cannot write {name}: {exc}") from None


def _run_group(
    plans: list[ProcessPlan],
    sink: LogSink,
    lock: threading.Lock,
    deadline: float | None,
    cancel: threading.Event,
    grace_s: float,
    errors_dir: Path | None,
    user: JobUser | None = None,
) -> tuple[list[ProcessResult], bool]:
    """Start `plans` together and supervise them: poll, and on the first failure, the
    deadline or a cancel, stop the rest. Returns results in plan order and whether it timed out."""
    running: list[_Running] = []
    try:
        for i, p in enumerate(plans):
            running.append(_start(p, sink, lock, errors_dir, i, user))
    except LaunchError:
        _stop(running, grace_s)
        raise
    timed_out = False
    try:
        while any(not r.exited.is_set() for r in running):
            cancel.wait(POLL_S)
            if cancel.is_set() or any(r.exited.is_set() and r.popen.returncode != 0 for r in running):
                break
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                break
    finally:
        _stop(running, grace_s)
    for r in running:
        for t in r.readers:
            # A grandchild that left the process group may hold the pipe open; do not wait forever.
            t.join(timeout=grace_s + 5)
    return [_result(r) for r in running], timed_out


def _start(
    plan: ProcessPlan,
    sink: LogSink,
    lock: threading.Lock,
    errors_dir: Path | None,
    i: int,
    user: JobUser | None = None,
) -> _Running:
    env = job_environment(os.environ, plan.env, user=user)
    error_file = None
    argv, as_user = process_argv(plan, user)
    if plan.argv[0] != "docker":
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if errors_dir is not None:
        error_file = errors_dir / f"{plan.log_name}.child-error.json"
        error_file.unlink(missing_ok=True)
        env[TORCHELASTIC_ERROR_FILE] = str(error_file)
    try:
        popen = subprocess.Popen(
            argv,
            cwd=plan.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stopping it stops its whole tree
            **as_user,
        )
    except OSError as exc:
        raise LaunchError(
            f"cannot start {plan.log_name} ({plan.argv[0]}): {exc.strerror or exc}",
            fix="check that the program is installed on the node and the working directory exists",
        ) from None
    running = _Running(plan, popen, time.time(), error_file)
    threading.Thread(target=running.wait, daemon=True, name=f"wait-{i}").start()
    assert popen.stdout is not None and popen.stderr is not None
    for name, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
        tail = running.tail if name == "stderr" else None
        t = threading.Thread(
            target=_pump,
            args=(pipe, plan.log_name, name, sink, lock, tail, _widen(pipe)),
            daemon=True,
            name=f"log-{i}-{name}",
        )
        t.start()
        running.readers.append(t)
    return running


def process_argv(plan: ProcessPlan, user: JobUser | None) -> tuple[list[str], dict[str, Any]]:
    """The argv that starts `plan` and the `Popen` arguments that switch to `user`: a
    container gets `docker run --user uid:gid` (the client itself stays the agent's, for the
    docker socket), a process on the node starts as the user with no extra groups."""
    argv = list(plan.argv)
    if user is None:
        return argv, {}
    if argv[:2] == ["docker", "run"]:
        argv[2:2] = ["--user", user.docker_user()]
        return argv, {}
    return argv, {"user": user.uid, "group": user.gid, "extra_groups": []}


def _widen(pipe: IO[bytes]) -> int:
    """Ask the kernel for a PIPE_BYTES pipe (Linux; elsewhere, or when refused, it stays as is:
    a user over `pipe-user-pages-soft` gets one page); returns its size as it is."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    try:
        return int(fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ))
    except (OSError, AttributeError):
        return 1 << 16  # Linux's default


def _pump(
    pipe: IO[bytes],
    log_name: str,
    stream: str,
    sink: LogSink,
    lock: threading.Lock,
    tail: collections.deque[bytes] | None,
    pipe_bytes: int = PIPE_BYTES,
) -> None:
    """Read `pipe` (of `pipe_bytes`) to its end into `sink`, chunk by chunk (and the last
    lines into the stderr tail).

    Reads take whatever the pipe holds; unless that filled half of it, the reader naps
    `READ_NAP_S` (`READ_NAP_LONG_S` after a trickle of at most `TRICKLE_BYTES`) so that a job
    printing a line per training step wakes it a few dozen times a second rather than once
    per line (its CPU comes out of the job's on a busy node). The widened pipe holds what a
    fast writer sends meanwhile (20 MB/s for 50 ms), so the writer does not wait for the
    nap; a pipe the kernel would not widen gets naps as much shorter as it is smaller.
    """
    fd = pipe.fileno()
    lines = TailLines(tail) if tail is not None else None
    with pipe:
        while chunk := os.read(fd, pipe_bytes):
            if lines is not None:
                lines.feed(chunk)
            with lock:
                sink(log_name, stream, chunk)
            if nap := nap_after(len(chunk), pipe_bytes):
                time.sleep(nap)
        if lines is not None:
            lines.end()
        with lock:
            sink(log_name, stream, b"")


def nap_after(read: int, pipe_bytes: int) -> float:
    """Seconds `_pump` waits after a read of `read` bytes from a pipe of `pipe_bytes`: none
    when the read took half the pipe or more (a fast writer: read again at once), the long nap
    after a trickle, else the short one; both shorter in proportion for a smaller pipe."""
    if read >= pipe_bytes // 2:
        return 0.0
    return (READ_NAP_LONG_S if read <= TRICKLE_BYTES else READ_NAP_S) * pipe_bytes / PIPE_BYTES


def _stop(running: list[_Running], grace_s: float) -> None:
    """SIGTERM every live process group, SIGKILL what is left after `grace_s`."""
    live = [r for r in running if not r.exited.is_set()]
    for r in live:
        r.stopped = True
        _signal_group(r.popen, signal.SIGTERM)
    end = time.monotonic() + grace_s
    for r in live:
        if not r.exited.wait(max(0.0, end - time.monotonic())):
            _signal_group(r.popen, signal.SIGKILL)
            _remove_container(r.plan)
            r.exited.wait()
    for r in running:
        # The leader exited, but its group may still hold children (a shell's background jobs).
        _signal_group(r.popen, signal.SIGKILL)


def _signal_group(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(popen.pid, sig)


def _remove_container(plan: ProcessPlan) -> None:
    argv = list(plan.argv)
    if argv[:2] == ["docker", "run"] and "--name" in argv:
        name = argv[argv.index("--name") + 1]
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=30, check=False)


def _result(r: _Running) -> ProcessResult:
    code = r.popen.returncode
    child = None
    text = read_job_file(r.error_file) if r.error_file is not None else None
    if text is not None:
        try:
            child = json.loads(text)
        except ValueError:
            child = None
    return ProcessResult(
        log_name=r.plan.log_name,
        rank=r.plan.rank,
        exit_code=code if code is not None else -int(signal.SIGKILL),
        started_at=r.started_at,
        ended_at=r.ended_at or time.time(),
        stopped=r.stopped,
        stderr_tail=tuple(line.decode("utf-8", "replace") for line in r.tail),
        child_error=child,
    )
