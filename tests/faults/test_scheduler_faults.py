"""The pool scheduler's failure modes on real agent processes over Azurite: a restarted agent
never re-enters the attempt it was in, a gang larger than the live pool waits visibly without
holding up smaller jobs, and a killed leader is replaced with nothing lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobrunner.store.client import Store
from jobrunner.store.pool_config import PoolConfig, write_pool_config
from jobrunner.store.status import RunRef
from tests.faults.pool import FaultPool, wait_for
from tests.faults.test_cancel import processes_with
from tests.runner.conftest import Cli, write_job

pytestmark = pytest.mark.slow
TERMINAL = {"succeeded", "failed", "canceled"}


def _run(pool: FaultPool, runs: list[RunRef], tmp_path: Path, name: str, text: str) -> str:
    run_id = pool.cli.submit(
        write_job(tmp_path, f"{name}.yml", f"experiment_name: sched\n{text}"), "--pool", pool.name
    )
    runs.append(RunRef(experiment="sched", id=run_id))
    return run_id


def _pool_status(cli: Cli, pool: str) -> dict[str, Any]:
    return cli.json("pool", "status", "--pool", pool)  # type: ignore[no-any-return]


def _with_dump(pool: FaultPool, runs: list[RunRef], test: Any) -> None:
    try:
        test()
    except BaseException:
        pool.stop()
        print(pool.dump(*runs))  # shown by pytest with the failure
        raise
    pool.stop()


def test_a_restarted_agent_never_reenters_its_attempt(azurite: str, tmp_path: Path) -> None:
    pool = FaultPool(azurite, tmp_path / "home", "reenter", 2).start()
    runs: list[RunRef] = []
    marker = f"reenter-{tmp_path.name}"

    def test() -> None:
        cli = pool.cli
        command = f"command: python3 -c 'import time; time.sleep(6)' {marker}\n"
        run = _run(pool, runs, tmp_path, "gang", f"{command}resources:\n  instance_count: 2\n")
        wait_for("both ranks running", lambda: len(processes_with(marker)) >= 2, 90)
        assert cli.json("status", run)["state"] == "running"
        victim = "reenter-1"
        pool.kill(victim)
        pool.start_agent(victim)  # the same name at once: a new incarnation
        final = cli.wait_state(run, TERMINAL, timeout=120)
        assert final["state"] == "succeeded", final
        assert final["attempt"] == 2 and final["user_failures"] == 0 and final["free_requeues"] == 1, final
        notes = " | ".join(t.get("note") or "" for t in final["transitions"])
        assert f"node(s) {victim} lost during attempt 1" in notes, notes
        assert {n["name"] for n in final["nodes"]} == {"reenter-0", "reenter-1"}
        assert not processes_with(marker)

    _with_dump(pool, runs, test)


def test_a_gang_larger_than_the_pool_or_over_quota_waits_visibly_and_holds_up_no_smaller_job(
    azurite: str, tmp_path: Path
) -> None:
    pool = FaultPool(azurite, tmp_path / "home", "gangwait", 2).start()
    write_pool_config(Store.connect(azurite), PoolConfig(name="gangwait", max_nodes=3))  # it may grow to 3
    runs: list[RunRef] = []

    def test() -> None:
        cli = pool.cli
        big = _run(pool, runs, tmp_path, "big", "command: echo big\nresources:\n  instance_count: 3\n")

        def says_it_waits() -> bool:
            view = _pool_status(cli, "gangwait")
            said = f"{big}: waiting for 3 nodes, the pool has 2"
            return said in view["waiting"] and view["nodes_short"] == 1

        wait_for("the pool status to say the gang waits for a third node", says_it_waits, 60)
        shown = cli.run("status", big, check=True).stdout
        assert "waiting for 3 nodes, the pool has 2" in shown, shown
        small = _run(pool, runs, tmp_path, "small", "command: echo small\n")
        assert cli.wait_state(small, TERMINAL, timeout=90)["state"] == "succeeded"
        assert cli.json("status", big)["state"] == "queued"
        cli.run("cancel", big, check=True)
        canceled = cli.wait_state(big, TERMINAL, timeout=60)
        assert [t["state"] for t in canceled["transitions"]] == ["queued", "canceled"]
        wait_for("the waiting line to go", lambda: _pool_status(cli, "gangwait")["waiting"] == [], 60)

        # an experiment's quota of 1 node: its second run waits, naming the quota, while a run
        # that counts against no quota takes the other node; it starts once the first ends
        quota = "trainstack:\n  quota: {experiment_nodes: 1}\n"
        release = tmp_path / "release"
        hold = f"command: while [ ! -e {release} ]; do sleep 0.2; done\n"
        first = _run(pool, runs, tmp_path, "q1", f"{hold}{quota}")
        cli.wait_state(first, {"running"}, timeout=60)
        second = _run(pool, runs, tmp_path, "q2", f"command: echo second\n{quota}")
        said = "over quota: experiment sched holds 1 of its 1 nodes"
        wait_for("the second run to name its quota", lambda: said in cli.run("status", second).stdout, 60)
        free = _run(pool, runs, tmp_path, "free", "command: echo free\n")
        assert cli.wait_state(free, TERMINAL, timeout=60)["state"] == "succeeded"  # beside the first
        assert cli.json("status", second)["state"] == "queued"
        release.touch()
        done = cli.wait_state(second, TERMINAL, timeout=90)
        assert done["state"] == "succeeded"
        ended = cli.json("status", first)["transitions"][-1]["at"]
        assert ended <= next(t["at"] for t in done["transitions"] if t["state"] == "running")

    _with_dump(pool, runs, test)


def test_a_killed_leader_is_replaced_and_nothing_is_lost(azurite: str, tmp_path: Path) -> None:
    pool = FaultPool(azurite, tmp_path / "home", "leaders", 3).start()
    runs: list[RunRef] = []

    def test() -> None:
        cli = pool.cli
        first = wait_for("a leader", lambda: _pool_status(cli, "leaders")["leader"], 60)
        pool.kill(str(first))
        jobs = [_run(pool, runs, tmp_path, f"after-{i}", f"command: echo after {i}\n") for i in range(3)]
        for run in jobs:
            status = cli.wait_state(run, TERMINAL, timeout=120)
            assert status["state"] == "succeeded" and status["attempt"] == 1, status
            assert first not in {n["name"] for n in status["nodes"]}
        assert _pool_status(cli, "leaders")["leader"] not in (None, first)

    _with_dump(pool, runs, test)
