"""The pool protocol in the deterministic simulation: no run lost, doubled or stranded under
drawn faults, a seed replays exactly, and each failure mode of the old gang board has its
scenario here (the decision's own cases are in test_decide.py)."""

from __future__ import annotations

import json

import pytest

from jobrunner.errors import StoreError
from jobrunner.scheduler.protocol import (
    NODES,
    PENDING,
    RUNS,
    BlobEntry,
    PendingIndex,
    ProtocolSettings,
    RunDoc,
    is_batch,
)  # fmt: skip
from jobrunner.scheduler.simulation import Faults, SimConfig, SimJob, World, simulate

SMALL = dict(agents=10, jobs=20)


@pytest.mark.parametrize("seed", range(6))
def test_no_run_is_lost_doubled_or_stranded_under_drawn_faults(seed: int) -> None:
    result = simulate(SimConfig(**SMALL, seed=seed, faults=Faults.drawn()))
    assert (result.lost, result.doubled, result.stranded) == (0, 0, 0), result


def test_a_seed_replays_exactly() -> None:
    config = SimConfig(**SMALL, seed=3, faults=Faults.drawn())
    first, second = simulate(config), simulate(config)
    assert (first.makespan_s, first.requests, first.requests_by_kind) == (
        second.makespan_s, second.requests, second.requests_by_kind,
    )  # fmt: skip


def _world(agents: int, jobs: list[SimJob], settings: ProtocolSettings | None = None) -> World:
    world = World(SimConfig(agents, 0, seed=1, settings=settings or ProtocolSettings()))
    world.jobs = jobs
    world.oracle.durations.update({j.doc.id: j.duration_s for j in jobs})
    world.open = {j.doc.id for j in jobs}
    for job in jobs:
        world._submit(job.doc)
    return world


def _doc(world: World, run: str) -> RunDoc:
    return RunDoc.decode(world.store.data[RUNS + run])


def test_a_restarted_agent_is_a_new_incarnation_and_never_reenters_its_attempt() -> None:
    world = _world(3, [SimJob(RunDoc("run-a", 3, 4000.0), 3000.0)])
    world.clock.run(until=600.0, done=lambda: False)
    victim = world.agents[1]
    assert victim.executor.current is not None  # the gang runs
    victim.crash()
    world.clock.at(world.clock.now + 5.0, victim.boot)  # systemd brings it back at once
    world.clock.run(until=world.clock.now + 60.0, done=lambda: False)
    # the new incarnation reported the attempt lost; the others were stopped; nobody runs attempt 1
    assert all(a.executor.current is None or a.executor.current[1] > 1 for a in world.agents)
    world.clock.run(until=20_000.0, done=lambda: not world.open)
    doc = _doc(world, "run-a")
    assert (doc.state, doc.attempt, world.oracle.doubled) == ("succeeded", 2, 0)
    assert doc.history[0].startswith("attempt 1: lost")


def test_free_requeues_are_capped_and_the_run_fails_with_its_history() -> None:
    settings = ProtocolSettings(max_free_requeues=2)
    world = _world(2, [SimJob(RunDoc("run-crashy", 1, 900.0), 600.0)], settings)

    def crash_whoever_runs_it() -> None:
        for agent in world.agents:
            if agent.alive and agent.executor.current is not None:
                agent.crash()
                world.clock.at(world.clock.now + 10.0, agent.boot)
        world.clock.at(world.clock.now + 20.0, crash_whoever_runs_it)

    world.clock.at(1.0, crash_whoever_runs_it)
    world.clock.at(300.0, world.audit)
    world.clock.run(until=50_000.0, done=lambda: not world.open)
    doc = _doc(world, "run-crashy")
    assert doc.state == "failed" and doc.free_requeues == 3
    assert [h.split(":")[1].split()[0] for h in doc.history[:3]] == ["lost", "lost", "lost"]
    assert doc.history[-1] == "free requeues exhausted"


def test_a_gang_larger_than_the_pool_waits_visibly_and_the_rest_runs() -> None:
    jobs = [SimJob(RunDoc("run-big", 8, 100.0), 50.0), SimJob(RunDoc("run-small", 1, 100.0), 50.0)]
    world = _world(5, jobs)
    reports = []
    for agent in world.agents:
        agent.leader.on_pass = reports.append
    world.clock.run(until=2_000.0, done=lambda: False)
    assert _doc(world, "run-small").state == "succeeded"
    # never assigned, so no document yet: the run waits in the intake batch that took it in
    assert RUNS + "run-big" not in world.store.data and world.findable("run-big")
    assert any(w.endswith(": waiting for 8 nodes, the pool has 5") for w in reports[-1].waiting)
    assert reports[-1].nodes_short == 3


def test_a_lost_answer_on_the_assignment_neither_loses_nor_doubles_the_run() -> None:
    # one write answer in five is lost: the leader and the nodes retry writes that
    # landed, so every conditional write meets its own earlier success
    world = World(SimConfig(4, 12, seed=5, faults=Faults(lost_answer_p=0.2)))
    world.clock.at(300.0, world.audit)
    world.clock.run(until=200_000.0, done=lambda: not world.open)
    assert not world.open and world.oracle.doubled == 0
    assert all(_doc(world, j.doc.id).state == "succeeded" for j in world.jobs)


def test_the_queue_order_is_the_stores_clock_not_the_submitters() -> None:
    world = _world(1, [])
    jobs = [SimJob(RunDoc("run-b", 1, 1000.0), 100.0), SimJob(RunDoc("run-a", 1, 1000.0), 10.0)]
    for at, job in zip((0.0, 0.5), jobs, strict=True):  # run-b reaches the store first
        world.clock.now = at
        world.oracle.durations[job.doc.id] = job.duration_s
        world.open.add(job.doc.id)
        world._submit(job.doc)
    world.clock.run(until=80.0, done=lambda: False)  # run-b runs for 100 s; run-a is taken in
    taken = [i for name in world.store.blobs[PENDING] for i in json.loads(world.store.data[name])]
    assert {i["id"]: i["at"] for i in taken} == {"run-a": 0.5}  # the queue's insertion time, no one's clock
    assert world.store.blobs[NODES]["nodes/vm-0000"].metadata["run"] == "run-b"


@pytest.mark.parametrize(("races", "first_attempt"), [(2, "ok"), (3, "undelivered")])
def test_an_assignment_that_meets_the_nodes_own_write_is_delivered_again(
    races: int, first_attempt: str
) -> None:
    # the node's own write (its report, a liveness beat) lands between the leader's listing
    # and each delivery: the leader tries 3 times while the node stays idle; past that the
    # attempt is requeued without spending the run's budget, never lost
    world = _world(1, [SimJob(RunDoc("run-r", 1, 100.0), 10.0)])
    node, put, left = world.agents[0].node, world.store.put, [races]

    def racing_put(name: str, data: bytes, metadata: dict[str, str], **kw: object) -> str:
        assigning = metadata.get("by") == "leader" and metadata.get("state") == "assigned"
        if name == node.blob and assigning and left[0]:
            left[0] -= 1
            node.dirty = True
            node.step(world.clock.now)
        return put(name, data, metadata, **kw)  # type: ignore[arg-type]

    world.store.put = racing_put  # type: ignore[method-assign]
    world.clock.run(until=2_000.0, done=lambda: not world.open)
    doc = _doc(world, "run-r")
    assert (doc.state, doc.free_requeues, world.oracle.doubled) == ("succeeded", 0, 0)
    assert doc.history[0].startswith(f"attempt 1: {first_attempt}")


def test_quotas_hold_each_experiment_to_its_nodes_and_every_job_still_runs() -> None:
    result = simulate(SimConfig(agents=16, jobs=60, seed=5, quota_nodes=6))
    assert (result.lost, result.doubled, result.stranded) == (0, 0, 0)
    assert result.over_quota == 0
    assert result.most_held == 6  # the quota bit: without it three experiments would share 16 nodes


def test_a_message_that_comes_back_after_its_batch_was_written_is_taken_in_once() -> None:
    # the intake batch lands, then every message delete fails for a while: the messages come
    # back and a second batch holds them again; each run still runs once, and both batches go
    jobs = [SimJob(RunDoc(f"run-{i}", 1, 1000.0), 100.0) for i in range(3)]
    world = _world(1, jobs)
    delete, failing = world.store.delete_message, [True]

    def flaky_delete(submission: object) -> None:
        if failing[0]:
            raise StoreError("no answer")
        delete(submission)  # type: ignore[arg-type]

    world.store.delete_message = flaky_delete  # type: ignore[method-assign]
    world.clock.run(until=50.0, done=lambda: False)
    batches = [n for n in world.store.blobs[PENDING] if is_batch(n)]
    assert len(batches) == 1 and len(world.store.queue) == 3  # written, and the messages stay
    failing[0] = False
    world.clock.run(until=5_000.0, done=lambda: not world.open)
    assert not world.open and world.oracle.doubled == 0
    assert [_doc(world, j.doc.id).attempt for j in jobs] == [1, 1, 1]
    assert world.store.blobs[PENDING] == {} and world.store.queue == {}


def test_a_listing_brings_back_no_run_that_left_its_batch_and_a_new_leader_settles_them() -> None:
    batch = BlobEntry("pending/~000000000000000-vm-0-1", "e1", 0.0, {})
    docs = [RunDoc("run-a", 1, None), RunDoc("run-b", 2, None)]
    index = PendingIndex()
    index.put_batches(batch, tuple((d, 0.0) for d in docs))
    index.remove("run-a")  # assigned
    index.replace_all((), {batch.name: (batch, tuple((d, 0.0) for d in docs))})
    assert list(index.entries) == ["run-b"] and index.spent() == []
    mark = BlobEntry("pending/run-b", "e2", 5.0, {"canceled": "1"})
    index.replace_all((mark,), {batch.name: (batch, tuple((d, 0.0) for d in docs))})
    assert index.canceled == {"run-b"} and index.spent() == [(batch.name, "e1")]
    assert index.submitted["run-b"] == docs[1]  # what a canceled document is written from
    # a new leader knows nothing of what left the batch: both come back, and reading each
    # run's document (the assignment reads it first) settles them
    fresh = PendingIndex()
    fresh.replace_all((), {batch.name: (batch, tuple((d, 0.0) for d in docs))})
    assert sorted(fresh.entries) == ["run-a", "run-b"]


def test_a_node_that_reported_finds_its_next_attempt_at_its_first_look() -> None:
    # the leader passes every `pass_s` while work waits, and a node looks `beat_idle_s` after
    # it reported, just past the next pass: with a deep queue that look finds the assignment
    jobs = [SimJob(RunDoc(f"run-{i:02d}", 1, 2000.0), 100.0 + 37.0 * i) for i in range(24)]
    world = _world(4, jobs)
    first_looks: list[bool] = []
    for agent in world.agents:
        node, look = agent.node, agent.node._look

        def counted(now: float, node=node, look=look) -> None:  # type: ignore[no-untyped-def]
            first = node.look_gap == node.settings.beat_idle_s
            look(now)
            if first and len(world.open) > len(world.agents):  # work still queued behind
                first_looks.append(node.state == "busy")

        node._look = counted  # type: ignore[method-assign]
    world.clock.run(until=50_000.0, done=lambda: not world.open)
    assert not world.open and len(first_looks) >= 12
    assert all(first_looks), first_looks
