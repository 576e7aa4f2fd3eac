"""Executing plans with real processes from small shell scripts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from jobrunner.api import LaunchPlan, ProcessPlan
from jobrunner.errors import LaunchError
from jobrunner.node import launch
from jobrunner.node.launch import ByLine, run_plan


class Lines(ByLine):
    """A sink that keeps the lines it is given."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []
        super().__init__(lambda log_name, stream, line: self.lines.append((log_name, stream, line)))

    def of(self, log_name: str, stream: str = "stdout") -> list[str]:
        return [line for n, s, line in self.lines if n == log_name and s == stream]


def sh(
    tmp_path: Path, name: str, script: str, *, env: dict[str, str] | None = None, rank: int | None = None
) -> ProcessPlan:
    path = tmp_path / f"{name}.sh"
    path.write_text("set -u\n" + script, encoding="utf-8")
    return ProcessPlan(("bash", str(path)), env or {}, str(tmp_path), name, rank)


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a parent (PID 1 here may never reap it)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


def plan(
    *processes: ProcessPlan, preparation: ProcessPlan | None = None, files: dict[str, str] | None = None
) -> LaunchPlan:
    return LaunchPlan("node0", "none", tuple(processes), preparation=preparation, files=files or {})


def test_exit_codes_lines_env_and_files(tmp_path: Path) -> None:
    sink = Lines()
    host_file = tmp_path / "tmp" / "hosts"
    result = run_plan(
        plan(
            sh(
                tmp_path,
                "a",
                'echo "rank=$RANK"; echo oops >&2; printf "no newline"',
                env={"RANK": "0"},
                rank=0,
            ),
            sh(tmp_path, "b", 'cat "$HOSTS"; echo "cwd=$(pwd)"', env={"HOSTS": str(host_file)}),
            files={str(host_file): "127.0.0.1 slots=2\n"},
        ),
        sink,
    )
    assert result.succeeded and result.root_cause is None
    assert result.exit_codes == {"a": 0, "b": 0}
    assert sink.of("a") == ["rank=0", "no newline"]
    assert sink.of("a", "stderr") == ["oops"]
    assert sink.of("b") == ["127.0.0.1 slots=2", f"cwd={tmp_path}"]


def test_first_failure_stops_the_rest_and_is_the_root_cause(tmp_path: Path) -> None:
    sink = Lines()
    marker = tmp_path / "survived"
    error_file = tmp_path / "errors" / "error.json"
    result = run_plan(
        plan(
            sh(tmp_path, "slow", f"sleep 30; touch {marker}", rank=0),
            sh(tmp_path, "bad", "echo 'Traceback: boom' >&2; sleep 0.2; exit 3", rank=1),
        ),
        sink,
        grace_s=5,
        error_file=error_file,
    )
    assert not result.succeeded
    assert result.exit_codes == {"slow": -15, "bad": 3}
    assert result.root_cause is not None and result.root_cause.log_name == "bad"
    assert result.root_cause.stderr_tail == ("Traceback: boom",)
    slow = result.processes[0]
    assert slow.stopped and not slow.failed
    body = json.loads(error_file.read_text())
    assert body["root_cause"]["log_name"] == "bad" and body["root_cause"]["exit_code"] == 3
    assert [f["log_name"] for f in body["failures"]] == ["bad"]
    assert not marker.exists()


def test_earliest_of_several_failures_is_the_root_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The launcher looks only after both have failed on their own, `later` (first in the
    # plan) once `first` is gone: the root cause is the earlier exit, not the plan's order.
    monkeypatch.setattr(launch, "POLL_S", 3.0)
    gone = tmp_path / "first.gone"
    result = run_plan(
        plan(
            sh(tmp_path, "later", f"until [ -e {gone} ]; do sleep 0.01; done; sleep 0.2; exit 2"),
            sh(tmp_path, "first", f"trap 'touch {gone}' EXIT; exit 1"),
        ),
        Lines(),
    )
    assert result.exit_codes == {"later": 2, "first": 1}
    assert [r.failed for r in result.processes] == [True, True]  # neither was stopped by us
    assert result.root_cause is not None and result.root_cause.log_name == "first"


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # The grandchild ignores SIGTERM: only SIGKILL to the group after the grace period stops it.
    script = f"bash -c 'trap \"\" TERM; echo $$ > {pid_file}; while true; do sleep 0.1; done' & wait"
    result = run_plan(plan(sh(tmp_path, "tree", script)), Lines(), timeout=0.5, grace_s=0.5)
    assert result.timed_out and not result.succeeded
    assert result.exit_codes == {"tree": -15}  # stopped at the deadline, not run to an end
    assert not alive(int(pid_file.read_text()))


def test_cancel_from_another_thread(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = run_plan(plan(sh(tmp_path, "long", "sleep 30")), Lines(), cancel=cancel, grace_s=2)
    assert result.canceled and result.exit_codes == {"long": -15}
    assert result.root_cause is None


def test_failed_preparation_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    sink = Lines()
    result = run_plan(
        plan(
            sh(tmp_path, "main", f"touch {marker}"),
            preparation=sh(tmp_path, "prep", "echo preparing; exit 4"),
        ),
        sink,
    )
    assert result.processes == ()
    assert result.preparation is not None and result.preparation.exit_code == 4
    assert result.root_cause is result.preparation
    assert sink.of("prep") == ["preparing"] and not marker.exists()


def test_processes_start_is_announced_after_the_preparation_only_when_it_succeeds(tmp_path: Path) -> None:
    order: list[str] = []
    main = sh(tmp_path, "main", "echo main")

    def sink(log_name: str, stream: str, line: str) -> None:
        order.append(line)

    ok = run_plan(
        plan(main, preparation=sh(tmp_path, "prep", "echo prep")),
        ByLine(sink),
        on_processes=lambda: order.append("start"),
    )
    assert ok.succeeded and order == ["prep", "start", "main"]
    order.clear()
    failed = run_plan(
        plan(main, preparation=sh(tmp_path, "prep", "exit 1")),
        ByLine(sink),
        on_processes=lambda: order.append("start"),
    )
    assert not failed.succeeded and order == []


def test_child_error_file_is_picked_up(tmp_path: Path) -> None:
    script = 'echo \'{"message": {"message": "ValueError: bad lr"}}\' > "$TORCHELASTIC_ERROR_FILE"; exit 1'
    error_file = tmp_path / "error.json"
    result = run_plan(plan(sh(tmp_path, "w", script)), Lines(), error_file=error_file)
    assert result.root_cause is not None
    assert result.root_cause.child_error == {"message": {"message": "ValueError: bad lr"}}
    assert "bad lr" in error_file.read_text()


def test_a_missing_program_is_a_launch_error(tmp_path: Path) -> None:
    missing = ProcessPlan(("no-such-program-xyz",), {}, str(tmp_path), "x")
    with pytest.raises(LaunchError, match="cannot start x"):
        run_plan(plan(sh(tmp_path, "ok", "sleep 5"), missing), Lines(), grace_s=1)


def test_many_lines_arrive_as_few_chunks(tmp_path: Path) -> None:
    count = 200_000
    chunks: list[bytes] = []
    result = run_plan(plan(sh(tmp_path, "spam", f"seq 1 {count}")), lambda _n, _s, data: chunks.append(data))
    assert result.succeeded
    assert b"".join(chunks).split(b"\n")[:-1] == [str(i).encode() for i in range(1, count + 1)]
    # handed over as read from the pipe, not a call per line; the end marked by an empty chunk
    assert len(chunks) < count / 100 and chunks[-1] == b""
