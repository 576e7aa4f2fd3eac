"""How a process's output reaches the sink: its bytes by the chunk, whole lines in order
however the reads split them where lines are asked for, the last line without a newline,
the stderr tail, lines cut at MAX_LINE_BYTES, and a pipe wide enough that a fast writer need
not wait for the reader."""

from __future__ import annotations

import collections
import fcntl
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.api import LaunchPlan, ProcessPlan
from jobrunner.node.launch import (
    MAX_LINE_BYTES,
    PIPE_BYTES,
    READ_NAP_LONG_S,
    READ_NAP_S,
    TRICKLE_BYTES,
    ByLine,
    LineSplitter,
    TailLines,
    nap_after,
    run_plan,
)

WRITER = """
import os, sys, time
# lines cut at odd places across writes and pauses, multi-byte text, CRLF, no final newline
os.write(1, b"first li"); time.sleep(0.1); os.write(1, b"ne\\nsecond\\r\\nthi")
time.sleep(0.1)
os.write(1, "rd \\u00e9t\\u00e9\\n".encode() + b"".join(b"bulk %06d\\n" % i for i in range(50000)))
os.write(1, b"last, no newline")
os.write(2, b"err 1\\nerr 2\\n")
"""

PIPE_SIZE = """
import fcntl, sys
print(fcntl.fcntl(1, fcntl.F_GETPIPE_SZ), flush=True)
"""


def run(tmp_path: Path, script: str) -> tuple[list[tuple[str, str]], object]:
    lines: list[tuple[str, str]] = []
    lock = threading.Lock()

    def sink(log_name: str, stream: str, line: str) -> None:
        with lock:
            lines.append((stream, line))

    process = ProcessPlan((sys.executable, "-c", script), {}, str(tmp_path), "node-0")
    plan = LaunchPlan("n", "none", (process,))
    return lines, run_plan(plan, ByLine(sink))


def test_lines_arrive_whole_and_in_order_however_the_reads_cut_them(tmp_path: Path) -> None:
    lines, result = run(tmp_path, WRITER)
    out = [line for stream, line in lines if stream == "stdout"]
    assert out[:3] == ["first line", "second", "third \u00e9t\u00e9"]
    assert out[3:-1] == [f"bulk {i:06d}" for i in range(50000)]
    assert out[-1] == "last, no newline"
    assert [line for stream, line in lines if stream == "stderr"] == ["err 1", "err 2"]
    assert result.processes[0].stderr_tail == ("err 1", "err 2")  # type: ignore[attr-defined]


def _kernel_widens_pipes() -> bool:
    """Whether the kernel gives this user a PIPE_BYTES pipe now: it refuses one while the
    user's pipe buffers are over `fs.pipe-user-pages-soft` (other tests' jobs hold theirs)."""
    read, write = os.pipe()
    try:
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except PermissionError:
        return False
    finally:
        os.close(read)
        os.close(write)
    return True


def test_the_output_pipe_holds_a_mebibyte(tmp_path: Path) -> None:
    refused = False
    for _ in range(5):
        lines, _ = run(tmp_path, PIPE_SIZE)
        if int(lines[0][1]) >= PIPE_BYTES:
            return
        # the kernel may have refused: then the pipe stays as it is, as documented
        refused = refused or not _kernel_widens_pipes()
        time.sleep(0.5)
    if refused:
        pytest.skip("the kernel refused PIPE_BYTES pipes to this user meanwhile (pipe-user-pages-soft)")
    raise AssertionError(f"the job's pipe holds {lines[0][1]} bytes, where the kernel gives {PIPE_BYTES}")


HUGE_LINE = """
import os
block = b"x" * (1 << 20)
for _ in range(200):  # 200 MiB without a newline, on stdout and (a tenth of it) on stderr
    os.write(1, block)
for _ in range(20):
    os.write(2, block)
os.write(2, b"\\nthe reason\\n")
"""


def test_a_200_mb_line_without_newline_is_passed_through_in_chunks(tmp_path: Path) -> None:
    sizes: dict[str, int] = {"stdout": 0, "stderr": 0}
    biggest = [0]

    def sink(log_name: str, stream: str, data: bytes) -> None:
        sizes[stream] += len(data)
        biggest[0] = max(biggest[0], len(data))

    process = ProcessPlan((sys.executable, "-c", HUGE_LINE), {}, str(tmp_path), "node-0")
    result = run_plan(LaunchPlan("n", "none", (process,)), sink)
    assert sizes == {"stdout": 200 << 20, "stderr": (20 << 20) + len(b"\nthe reason\n")}
    assert biggest[0] <= PIPE_BYTES  # never gathered into one line
    tail = result.processes[0].stderr_tail
    assert [len(line) for line in tail] == [MAX_LINE_BYTES, len("the reason")]
    assert tail[-1] == "the reason"


def test_the_line_splitter_cuts_long_lines_and_keeps_the_rest_whole() -> None:
    lines: list[bytes] = []
    splitter = LineSplitter(lines.append, cap=4)
    for piece in (b"ab", b"cdef\r\ng", b"h\n\nlong line\nend"):
        splitter.feed(piece)
    splitter.end()
    assert lines == [b"abcd", b"gh", b"", b"long", b"end"]


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b"long-line-"]), max_size=80).map(
        b"".join
    ),
    cuts=st.lists(st.integers(0, 200), max_size=8),
    keep=st.integers(1, 4),
    cap=st.integers(1, 12),
)
def test_the_tail_keeps_the_last_lines_the_splitter_gives_however_the_chunks_fall(
    text: bytes, cuts: list[int], keep: int, cap: int
) -> None:
    every: list[bytes] = []
    splitter = LineSplitter(every.append, cap=cap)
    tail = TailLines(collections.deque(maxlen=keep), cap=cap)
    edges = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    for start, end in zip(edges, edges[1:], strict=False):
        splitter.feed(text[start:end])
        tail.feed(text[start:end])
    splitter.end()
    tail.end()
    assert list(tail.lines) == every[-keep:]


def test_the_tail_of_a_chunk_of_many_lines_is_cut_from_its_end_only() -> None:
    tail = TailLines(collections.deque(maxlen=2))
    tail.feed(b"half a li")
    tail.feed(b"ne\n" + b"".join(b"line %d\n" % i for i in range(100_000)) + b"and the st")
    tail.feed(b"art of one\n")
    tail.end()
    assert list(tail.lines) == [b"line 99999", b"and the start of one"]


def test_the_reader_naps_longer_after_a_trickle_never_after_a_big_read_and_less_on_a_small_pipe() -> None:
    assert nap_after(80, PIPE_BYTES) == READ_NAP_LONG_S  # a line: wait for more before reading again
    assert nap_after(TRICKLE_BYTES + 1, PIPE_BYTES) == READ_NAP_S
    assert nap_after(PIPE_BYTES // 2, PIPE_BYTES) == 0  # a fast writer: read again at once
    # a pipe the kernel would not widen fills 16 times sooner: the writer must not wait on a nap
    assert nap_after(80, 1 << 16) == READ_NAP_LONG_S / 16
    assert nap_after(1 << 15, 1 << 16) == 0
