"""A started gang is requeued as orphaned only when its members had time to say they run it:
right after it fills, a member may still name the gang it moved from (found by the scale
benchmark: busy pools requeued healthy gangs and ran their jobs twice)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from jobrunner.agent import Agent, AgentSettings
from jobrunner.api import JobState
from jobrunner.attempt import Timing
from jobrunner.gang import Board, Entry, Seat, read_board, update_board
from jobrunner.registry import AgentRecord, beat
from jobrunner.status import RunStatus, create_status, read_status, update_status, utc_now
from jobrunner.store import Retry, Store

STALE_S = 0.6


def seat(name: str) -> Seat:
    return Seat(name=name, address="127.0.0.1", port=1000)


def test_a_gang_just_filled_is_not_taken_for_orphaned(azurite: str, tmp_path: Path) -> None:
    store = Store.connect(azurite, retry=Retry(max_s=0.1))
    pool, run_id = "orphans", "run-20260101-000000-abcdef"
    now = utc_now()
    status = RunStatus(
        id=run_id, experiment="e", pool=pool, instance_count=2, submitted_at=now, updated_at=now
    )
    create_status(store, status.moved_to(JobState.QUEUED))
    update_status(store, status.ref, lambda s: s.moved_to(JobState.PREPARING))

    def alive(name: str, job: str | None) -> None:
        state = "busy" if job else "idle"
        record = AgentRecord(name=name, pool=pool, pid=1, address="127.0.0.1", state=state,
                             current_job=job, last_heartbeat=now, started_at=now)  # fmt: skip
        beat(store, record)  # a fresh heartbeat

    entry = Entry(job_id=run_id, experiment="e", attempt=1, size=2, seq="1")
    board = Board().post(entry).place(seat("a0")).place(seat("a1"))
    update_board(store, pool, lambda _: board)
    witness = Agent(
        store,
        AgentSettings(pool=pool, name="w", work_dir=tmp_path, timing=Timing(stale_after_s=STALE_S)),
    )
    time.sleep(STALE_S + 0.2)  # the witness's store has been steady long enough to judge silence
    alive("w", None)
    # both members are alive, but their records still name the gang they were in before
    alive("a0", "run-earlier")
    alive("a1", "run-earlier")
    started = read_board(store, pool)[0]
    assert started.entries[0].started and started.entries[0].started_s_ago() < 5

    # within stale_after_s of filling: left alone, even though no record names it yet
    fresh = started.model_copy(
        update={"entries": (started.entries[0].model_copy(update={"started_at": utc_now()}),)}
    )
    witness._recover_orphans(fresh)
    assert read_status(store, status.ref)[0].attempt == 1
    assert read_board(store, pool)[0].entries

    # members that never said they run it, long after it filled: gone, the run goes again
    threading.Event().wait(STALE_S)
    alive("w", None)
    alive("a0", "run-earlier")
    alive("a1", None)
    witness._recover_orphans(read_board(store, pool)[0])
    after, _ = read_status(store, status.ref)
    assert after.state is JobState.QUEUED and after.attempt == 2
    assert read_board(store, pool)[0].entries == ()
