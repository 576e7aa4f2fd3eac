"""The pool protocol in the deterministic simulation: no run lost, doubled or stranded under
drawn faults, a seed replays exactly, and each failure mode of the old gang board has its
scenario here (the decision's own cases are in test_decide.py)."""

from __future__ import annotations

import pytest

from jobrunner.scheduler.protocol import NODES, PENDING, RUNS, ProtocolSettings, RunDoc
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
    assert _doc(world, "run-big").state == "queued" and PENDING + "run-big" in world.store.blobs[PENDING]
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
    jobs = [SimJob(RunDoc("run-b", 1, 100.0), 10.0), SimJob(RunDoc("run-a", 1, 100.0), 10.0)]
    for at, job in zip((0.0, 0.5), jobs, strict=True):  # run-b reaches the store first
        world.clock.now = at
        world.oracle.durations[job.doc.id] = job.duration_s
        world.open.add(job.doc.id)
        world._submit(job.doc)
    world.clock.run(until=8.0, done=lambda: False)  # run-b runs for 10 s
    pending = world.store.blobs[PENDING]["pending/run-a"].metadata
    assert pending["submitted_at"] == "0.5"  # the queue's insertion time, not anyone's clock
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
