"""The web page (`jobrunner ui`) in a real browser: Debian's Chromium, headless, against a real
run of examples/mlflow on a local pool. The run list shows the run, and a run that changes state
while the list is open shows its new state without a reload; the run page draws a chart of its
metric (uPlot, in the page) with every step."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobrunner.local.azurite import free_port
from tests.runner.conftest import Cli
from tests.tracking.conftest import STEPS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_tool("chromium", "chromium"),
]

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,1400",
)  # fmt: skip
CHART_BLUE = (0x25, 0x63, 0xEB)  # the series colour ui.js gives each chart's line


@contextlib.contextmanager
def ui_server(env: dict[str, str]) -> Iterator[str]:
    """`jobrunner ui` over the store that `env` names, on a free loopback port; yields its address."""
    port = free_port()
    argv = [sys.executable, "-m", "jobrunner", "ui", "--port", str(port)]
    with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as page:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/api/runs", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or page.poll() is not None:
                    raise AssertionError("jobrunner ui did not answer") from None
                time.sleep(0.25)
        try:
            yield url
        finally:
            page.terminate()
            page.wait(30)


@pytest.fixture(scope="module")
def ui(tracked_pool: Cli) -> Iterator[str]:
    """`jobrunner ui` over the tracked pool's store; yields its address."""
    with ui_server(tracked_pool.env) as url:
        yield url


def chromium(url: str, profile: Path, *, screenshot: Path | None = None) -> str:
    """The page's DOM once its scripts ran (virtual time lets its fetches and drawing finish),
    and a screenshot when asked."""
    what = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", *what,
         url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _above_3_and_4(fd: int) -> int:
    """`fd` moved to 10 or above, so that redirecting onto 3 and 4 cannot clobber it (bash takes
    descriptors above 9 in a redirection, dash does not)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class DevTools:
    """Chromium driven over its DevTools protocol on a pipe (`--remote-debugging-pipe`: commands
    in on fd 3, answers out on fd 4, each a JSON message ending in NUL), attached to its page."""

    def __init__(self, url: str, profile: Path) -> None:
        theirs_in, self._to_browser = os.pipe()
        self._from_browser, theirs_out = os.pipe()
        theirs_in, theirs_out = _above_3_and_4(theirs_in), _above_3_and_4(theirs_out)
        script = f'exec chromium "$@" 3<&{theirs_in} 4>&{theirs_out} {theirs_in}<&- {theirs_out}>&-'
        self.process = subprocess.Popen(
            ["bash", "-c", script, "bash", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             "--remote-debugging-pipe", url],
            pass_fds=(theirs_in, theirs_out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(theirs_in)
        os.close(theirs_out)
        self._ids = 0
        self._buffer = b""
        page = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self._session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]

    def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 16)
                assert chunk, "chromium closed its DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._ids:  # events and other answers are not ours
                assert "error" not in answer, answer
                return answer["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        found = self.send("Runtime.evaluate", self._session, expression=expression, returnByValue=True)
        return found["result"].get("value")

    def wait_for(self, expression: str, expected: Any, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self.evaluate(expression)) != expected:
            assert time.monotonic() < deadline, (
                f"{expression} is {seen!r}, not {expected!r}, after {timeout} s"
            )
            time.sleep(0.25)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        os.close(self._to_browser)
        os.close(self._from_browser)


def test_the_run_list_follows_a_run_that_changes_state_while_it_is_open(
    ui: str, tracked_pool: Cli, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = tmp_path / "wait.yml"
    job.write_text(
        f"command: while [ ! -e {release} ]; do sleep 0.2; done\nexperiment_name: live-list\n"
        "display_name: waits-for-release\n"
    )
    run_id = tracked_pool.submit(job)
    tracked_pool.wait_state(run_id, {"running"}, timeout=120)
    browser = DevTools(ui + "/", tmp_path / "profile")
    try:
        cell = f"document.querySelector('tr[data-run=\"{run_id}\"] .state')?.textContent ?? null"
        browser.wait_for(cell, "running")
        browser.evaluate("window.stayed = 'this page'")  # gone if the page is loaded again
        release.touch()
        browser.wait_for(cell, "succeeded")
        assert browser.evaluate("window.stayed") == "this page"
    finally:
        browser.close()


def test_run_list_shows_the_run(ui: str, example_run: str, tmp_path: Path) -> None:
    dom = chromium(ui + "/", tmp_path / "profile")
    row = dom[dom.index(f'<tr data-run="{example_run}">') :].split("</tr>", 1)[0]
    assert f'href="/runs/{example_run}"' in row
    assert ">succeeded<" in row and "<td>2</td>" in row  # state, nodes


def test_run_page_draws_a_chart_of_its_metric(ui: str, example_run: str, tmp_path: Path) -> None:
    dom = chromium(f"{ui}/runs/{example_run}", tmp_path / "profile")
    chart = dom[dom.index('data-metric="loss"') :].split('class="chart"', 1)[0]
    assert f'data-points="{STEPS}"' in chart
    assert "<canvas" in chart and "uplot" in chart
    assert "learning_rate=0.1, steps=50, world_size=2" in dom
    assert 'data-stream="node-1"' in dom and "50 steps logged" in dom  # logs per node and rank

    image = pytest.importorskip("PIL.Image")
    shot = tmp_path / "run.png"
    chromium(f"{ui}/runs/{example_run}", tmp_path / "profile2", screenshot=shot)
    raw = image.open(shot).convert("RGB").tobytes()
    pixels = zip(raw[0::3], raw[1::3], raw[2::3], strict=True)
    drawn = sum(1 for p in pixels if all(abs(a - b) < 40 for a, b in zip(p, CHART_BLUE, strict=True)))
    assert drawn > 500, f"only {drawn} pixels of the chart lines in the screenshot"


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_page_needs_no_internet_and_unknown_runs_are_not_found(ui: str, example_run: str) -> None:
    status, page = fetch(f"{ui}/runs/{example_run}")
    assert status == 200
    assert "http://" not in page and "https://" not in page  # scripts and styles from the package
    assert fetch(f"{ui}/static/uPlot.iife.min.js")[0] == 200
    assert fetch(f"{ui}/runs/run-nope")[0] == 404
    status, body = fetch(f"{ui}/api/runs/run-nope")
    assert status == 404 and "error" in body
    assert fetch(f"{ui}/runs/{example_run}/outputs/../status.json")[0] == 404


def test_the_ui_listens_on_loopback_by_default(tracked_pool: Cli) -> None:
    shown = tracked_pool.run("ui", "--help", check=True).stdout
    assert "127.0.0.1" in shown and "--port" in shown
