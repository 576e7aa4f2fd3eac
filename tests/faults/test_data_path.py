"""The node's data path on a real agent over Azurite: every log byte reaches the store once
(the merged log, and Batch AI's per-process files, a view of it by its stream index, even
when the store's answers to appends get lost, and when the store gave up on one), and a
Preempt during a large output upload stops the job at once, then flushes the checkpoint it
wrote on SIGTERM before the rest of the upload."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner.local.azurite import connection_string
from jobrunner.store.client import RUNS, Retry, Store
from jobrunner.store.status import RunRef, read_status
from tests.faults.events_server import ScheduledEventsServer
from tests.faults.pool import FaultPool, wait_for
from tests.faults.proxy import FaultyProxy

pytestmark = pytest.mark.slow

LINES = 400


def ports(connection: str) -> tuple[int, int]:
    parts = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)
    return tuple(int(parts[k].rsplit(":", 1)[1].split("/")[0]) for k in ("BlobEndpoint", "QueueEndpoint"))  # type: ignore[return-value]


@contextlib.contextmanager
def running(pool: FaultPool, refs: list[RunRef]) -> Iterator[FaultPool]:
    """The pool started, stopped at the end; on a failure what happened is printed first."""
    pool.start()
    try:
        yield pool
    except BaseException:
        pool.stop()
        print(pool.dump(*refs))  # shown by pytest with the failure
        raise
    finally:
        pool.stop()


def submit(pool: FaultPool, job: Path, refs: list[RunRef]) -> tuple[str, RunRef]:
    run = pool.cli.submit(job, "--pool", pool.name)
    refs.append(RunRef(experiment=pool.cli.json("status", run)["experiment"], id=run))
    return run, refs[-1]


def numbered_job(folder: Path) -> Path:
    """A job printing `out i` and `err i`, i = 1..LINES, on stdout and stderr in turn."""
    job = folder / "numbered.yml"
    job.write_text(
        f'command: for i in $(seq 1 {LINES}); do echo "out $i"; echo "err $i" >&2; sleep 0.01; done\n'
    )
    return job


@pytest.fixture
def proxy(azurite: str) -> Iterator[FaultyProxy]:
    with FaultyProxy(ports(azurite)[0]) as p:
        yield p


def test_every_log_byte_goes_up_once_even_when_answers_are_lost(
    azurite: str, proxy: FaultyProxy, tmp_path: Path
) -> None:
    pool = FaultPool(connection_string(proxy.port, ports(azurite)[1]), tmp_path / "home", "once", 1)
    job = numbered_job(tmp_path)
    done = threading.Event()

    def lose_answers() -> None:  # an append lands, its answer never comes back, again and again
        while not done.wait(0.3):
            proxy.lose_answer_to(b"comp=appendblock")

    refs: list[RunRef] = []
    threading.Thread(target=lose_answers, daemon=True).start()
    try:
        with running(pool, refs):
            run, ref = submit(pool, job, refs)
            final = pool.cli.wait_state(run, {"succeeded", "failed", "canceled"}, timeout=120)
            logs = pool.cli.run("logs", run, check=True).stdout
    finally:
        done.set()
    assert final["state"] == "succeeded", final
    assert proxy.lost_answers > 0
    merged = [line.split("| ", 1)[1] for line in logs.splitlines() if line.startswith("node-0| ")]
    assert [x for x in merged if x.startswith("out ")] == [f"out {i}" for i in range(1, LINES + 1)]
    assert [x for x in merged if x.startswith("err ")] == [f"err {i}" for i in range(1, LINES + 1)]


def test_batchai_files_stay_a_view_of_the_merged_log_when_the_store_gives_up_on_an_index_append(
    azurite: str, proxy: FaultyProxy, tmp_path: Path
) -> None:
    """Every try of an append to the stream index lands unheard, so the agent's store gives up
    on it; the job writes on, and the next round must find the bytes landed and go on from there
    (it used to stay stuck at that offset: the view lost its tail)."""
    store = Store.connect(azurite)
    pool = FaultPool(connection_string(proxy.port, ports(azurite)[1]), tmp_path / "home", "views", 1)
    go, half = tmp_path / "go", LINES // 2
    job = tmp_path / "numbered.yml"
    job.write_text(
        f'command: for i in $(seq 1 {LINES}); do echo "out $i"; echo "err $i" >&2; '
        f"if [ $i = {half} ]; then while [ ! -e {go} ]; do sleep 0.05; done; fi; sleep 0.01; done\n"
    )
    tries = Retry().attempts  # the agents' store tries each call this often, then gives up
    proxy.lose_answer_to(b".streams?comp=appendblock", times=tries)
    refs: list[RunRef] = []
    with running(pool, refs):
        run, ref = submit(pool, job, refs)
        wait_for("the agent's store giving up on an index append", lambda: proxy.lost_answers >= tries, 120)
        go.touch()  # the rest of the job's lines: the index grows past what the lost append held
        final = pool.cli.wait_state(run, {"succeeded", "failed", "canceled"}, timeout=120)
        logs = pool.cli.run("logs", run, check=True).stdout
    assert final["state"] == "succeeded", final
    merged = [line.split("| ", 1)[1] for line in logs.splitlines() if line.startswith("node-0| ")]
    for word in ("out", "err"):
        assert [x for x in merged if x.startswith(f"{word} ")] == [f"{word} {i}" for i in range(1, LINES + 1)]
    # no copy in the store: `jobrunner outputs` cuts them out of the merged log by its index
    assert not [b.name for b in store.list(RUNS, ref.outputs_prefix("logs")) if "-wk-" in b.name]
    pool.cli.run("outputs", run, "--download", str(tmp_path / "out"), check=True)
    for stream, word in (("stdout", "out"), ("stderr", "err")):
        text = (tmp_path / "out" / "logs" / f"{stream}-wk-0.txt").read_text()
        assert text.splitlines() == [f"{word} {i}" for i in range(1, LINES + 1)]


JOB = """\
import os, signal, sys, time
out, marks = sys.argv[1], sys.argv[2]
if os.path.exists(os.path.join(out, "final.ckpt")):  # a new attempt: resumed from the checkpoint
    print("resumed from final.ckpt")
    sys.exit(0)

def on_sigterm(*_):
    open(os.path.join(marks, "sigterm"), "w").close()
    with open(os.path.join(out, "final.ckpt"), "wb") as f:
        f.write(b"weights" * 1000)
    sys.exit(143)

signal.signal(signal.SIGTERM, on_sigterm)
with open(os.path.join(out, "big.bin"), "wb") as f:
    for _ in range(BIG_MIB):
        f.write(os.urandom(1 << 20))
open(os.path.join(marks, "written"), "w").close()
while True:
    time.sleep(0.1)
"""
BIG_MIB = 96
RATE = 8 << 20  # the agents' uploads go at 8 MiB/s: the big file takes about 12 s


def test_a_preempt_during_a_large_upload_stops_the_job_at_once_and_flushes_its_checkpoint(
    azurite: str, proxy: FaultyProxy, tmp_path: Path
) -> None:
    store = Store.connect(azurite)
    code, marks = tmp_path / "code", tmp_path / "marks"
    code.mkdir()
    marks.mkdir()
    (code / "job.py").write_text(JOB.replace("BIG_MIB", str(BIG_MIB)))
    job = tmp_path / "preempt.yml"
    job.write_text(
        f"command: python job.py ${{{{outputs.model}}}} {marks}\ncode: {code}\n"
        "outputs:\n  model:\n    type: uri_folder\n"
    )
    with ScheduledEventsServer() as events:
        env = {"JOBRUNNER_SCHEDULED_EVENTS_URL": events.url}
        pool = FaultPool(connection_string(proxy.port, ports(azurite)[1]), tmp_path / "home", "evict", 2, env)
        refs: list[RunRef] = []
        with running(pool, refs):
            proxy.set_rate(RATE)
            run, ref = submit(pool, job, refs)
            wait_for("the big output written", (marks / "written").exists, 120)
            sent_before = proxy.relayed
            under_way = lambda: proxy.relayed > sent_before + 16 * (1 << 20)  # noqa: E731
            wait_for("the big output's upload under way", under_way, 60)
            node = read_status(store, ref)[0].nodes[0].name
            events.announce("Preempt", node)
            wait_for("SIGTERM to the job", (marks / "sigterm").exists, 60, every=0.05)
            # answered during the upload: the big file is not all in the store yet
            big = ref.outputs_prefix("model") + "big.bin"
            assert sum(b.size for b in store.list(RUNS, big) if b.name == big) < BIG_MIB << 20
            final = pool.cli.wait_state(run, {"succeeded", "failed", "canceled"}, timeout=180)
            logs = pool.cli.run("logs", run, "--attempt", "2", check=True).stdout
    assert final["state"] == "succeeded" and final["attempt"] == 2, final
    assert "preempted" in " | ".join(t["note"] or "" for t in final["transitions"])
    assert "resumed from final.ckpt" in logs  # the checkpoint written on SIGTERM was flushed
    assert store.size(RUNS, ref.outputs_prefix("model") + "final.ckpt") == 7000
    assert store.size(RUNS, ref.outputs_prefix("model") + "big.bin") == BIG_MIB << 20  # and the rest after it
