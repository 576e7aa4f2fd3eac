"""How a process's output reaches the sink: whole lines in order however the reads split
them, the last line without a newline, the stderr tail, and a pipe wide enough that a fast
writer need not wait for the reader."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from jobrunner.api import LaunchPlan, ProcessPlan
from jobrunner.launch import PIPE_BYTES, run_plan

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
    return lines, run_plan(plan, sink)


def test_lines_arrive_whole_and_in_order_however_the_reads_cut_them(tmp_path: Path) -> None:
    lines, result = run(tmp_path, WRITER)
    out = [line for stream, line in lines if stream == "stdout"]
    assert out[:3] == ["first line", "second", "third \u00e9t\u00e9"]
    assert out[3:-1] == [f"bulk {i:06d}" for i in range(50000)]
    assert out[-1] == "last, no newline"
    assert [line for stream, line in lines if stream == "stderr"] == ["err 1", "err 2"]
    assert result.processes[0].stderr_tail == ("err 1", "err 2")  # type: ignore[attr-defined]


def test_the_output_pipe_holds_a_mebibyte(tmp_path: Path) -> None:
    lines, _ = run(tmp_path, PIPE_SIZE)
    assert int(lines[0][1]) >= PIPE_BYTES
