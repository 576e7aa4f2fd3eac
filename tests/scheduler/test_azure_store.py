"""The pool protocol's store calls on a real Azurite: ETag and if-absent conditions, metadata in
one listing with the store's clock, the leader lease (exclusive, and ours again after a lost
answer), submissions in queue insertion order; then the leader and three nodes run a gang
and a single-node job to the end over it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from jobrunner.errors import ConflictError, NotFoundError, StoreError
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.scheduler.protocol import (
    RUNS,
    Leader,
    NodeAgent,
    ProtocolSettings,
    RunDoc,
    cancel_queued,
    submit,
)
from jobrunner.store.client import Retry, Store

FAST = ProtocolSettings(
    beat_idle_s=0.2, beat_busy_s=0.5, stale_after_s=30.0, fence_s=20.0, lease_s=15, renew_s=3.0,
    pass_s=0.2, leader_try_s=0.5,
)  # fmt: skip


def _store(azurite: str, pool: str) -> AzurePoolStore:
    return AzurePoolStore(Store.connect(azurite, retry=Retry(attempts=3, base_s=0.05, max_s=0.2)), pool)


def test_conditions_metadata_and_the_stores_clock(azurite: str) -> None:
    store = _store(azurite, "sched-calls")
    etag = store.put("nodes/vm-0", b"", {"inc": "vm-0#1", "state": "idle"}, if_absent=True)
    with pytest.raises(ConflictError):
        store.put("nodes/vm-0", b"", {}, if_absent=True)
    store.put("nodes/vm-0", b"", {"inc": "vm-0#1", "state": "busy"}, if_match=etag)
    with pytest.raises(ConflictError):
        store.put("nodes/vm-0", b"", {}, if_match=etag)
    listing = store.list("nodes/")
    [entry] = listing.entries
    assert (entry.name, entry.metadata) == ("nodes/vm-0", {"inc": "vm-0#1", "state": "busy"})
    assert entry.last_modified <= listing.at + 1.0  # both on the store's clock (Date has 1 s steps)
    with pytest.raises(ConflictError):
        store.delete("nodes/vm-0", if_match=etag)
    store.delete("nodes/vm-0", if_match=entry.etag)
    assert store.list("nodes/").entries == ()


def test_the_lease_is_exclusive_and_a_retry_by_its_holder_gets_it_back(azurite: str) -> None:
    store = _store(azurite, "sched-lease")
    assert store.acquire_lease("leader", 15, "vm-0#1")
    assert not store.acquire_lease("leader", 15, "vm-1#1")
    assert store.acquire_lease("leader", 15, "vm-0#1")  # its earlier answer was lost
    store.renew_lease("leader", "vm-0#1")
    with pytest.raises(StoreError):
        store.renew_lease("leader", "vm-1#1")


def test_submissions_carry_the_queues_insertion_time(azurite: str) -> None:
    store = _store(azurite, "sched-queue")
    store.send({"id": "run-1", "nodes": 1})
    store.send({"id": "run-2", "nodes": 2})
    taken = store.receive(32)
    assert [s.body["id"] for s in taken] == ["run-1", "run-2"]
    assert taken[0].inserted_at <= taken[1].inserted_at
    for sub in taken:
        store.delete_message(sub)
    assert store.receive(32) == []


class _Instant:
    """An executor whose processes end at the next turn of the loop, counting every start."""

    def __init__(self, due: list[Callable[[], None]], starts: list[tuple[str, int, int]]) -> None:
        self.due, self.starts = due, starts

    def start(
        self, run: str, attempt: int, rank: int, size: int, done: Callable[[str], None], doc: bytes = b""
    ) -> None:
        assert RunDoc.decode(doc).owners, "the assignment carries the run's document"
        self.starts.append((run, attempt, rank))
        self.due.append(lambda: done("ok"))

    def stop(self) -> None:
        pass


def _run_pool(
    store: AzurePoolStore, nodes: list[NodeAgent], due: list[Callable[[], None]], runs: tuple[str, ...],
    done: Callable[[dict[str, RunDoc]], bool], timeout_s: float,
) -> tuple[dict[str, RunDoc], list[Leader]]:  # fmt: skip
    """Step the nodes and a leader on each until `done` holds of the runs' documents (those
    written: the leader writes one when it assigns or ends the run)."""
    leaders = [Leader(store, n.incarnation, FAST) for n in nodes]
    deadline = time.monotonic() + timeout_s
    docs: dict[str, RunDoc] = {}
    while time.monotonic() < deadline:
        now = time.monotonic()
        for node, leader in zip(nodes, leaders, strict=True):
            node.step(now)
            leader.step(now, idle=node.idle)
        while due:
            due.pop(0)()
        docs = {}
        for run in runs:
            with contextlib.suppress(NotFoundError):
                docs[run] = RunDoc.decode(store.get(RUNS + run)[0])
        if done(docs):
            break
        time.sleep(0.1)
    return docs, leaders


def test_a_leader_and_three_nodes_run_a_gang_and_a_single_job_once_each(azurite: str) -> None:
    store = _store(azurite, "sched-run")
    due: list[Callable[[], None]] = []
    starts: list[tuple[str, int, int]] = []
    nodes = [NodeAgent(store, f"vm-{i}", f"vm-{i}#1", _Instant(due, starts), FAST) for i in range(3)]
    submit(store, RunDoc("run-gang", 2, 600.0))
    submit(store, RunDoc("run-single", 1, 600.0))
    docs, leaders = _run_pool(
        store, nodes, due, ("run-gang", "run-single"),
        lambda d: len(d) == 2 and all(r.state == "succeeded" for r in d.values()), timeout_s=90,
    )  # fmt: skip
    assert {r: d.state for r, d in docs.items()} == {"run-gang": "succeeded", "run-single": "succeeded"}
    assert sorted(starts) == [("run-gang", 1, 0), ("run-gang", 1, 1), ("run-single", 1, 0)]
    assert sum(leader.leading for leader in leaders) == 1


def test_a_cancel_before_the_leader_took_the_submission_in_ends_it_unrun(azurite: str) -> None:
    """The cancel mark comes first, the submission's message after it: the leader writes a
    canceled document in the run's place, the intake then finds the run ended, and no node
    ever starts it, while the run submitted after it runs."""
    store = _store(azurite, "sched-cancel-early")
    due: list[Callable[[], None]] = []
    starts: list[tuple[str, int, int]] = []
    nodes = [NodeAgent(store, "vm-0", "vm-0#1", _Instant(due, starts), FAST)]
    submit(store, RunDoc("run-early", 1, 600.0))
    cancel_queued(store, "run-early")
    submit(store, RunDoc("run-after", 1, 600.0))
    docs, _ = _run_pool(
        store, nodes, due, ("run-early", "run-after"),
        lambda d: "run-early" in d and "run-after" in d and d["run-after"].state == "succeeded", timeout_s=60,
    )  # fmt: skip
    assert {r: d.state for r, d in docs.items()} == {"run-early": "canceled", "run-after": "succeeded"}
    assert starts == [("run-after", 1, 0)], "the canceled run never reached a node"
