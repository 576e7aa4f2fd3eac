"""A 10-second storage outage in the middle of a 2-node job: the job succeeds, no peer is taken
for lost when the store comes back (every heartbeat is old by then), and the logs are complete:
each node's numbered lines arrive once each, in order."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from jobrunner.local.azurite import Azurite, start_azurite
from jobrunner.store.status import RunRef
from tests.faults.pool import FaultPool, wait_for

pytestmark = pytest.mark.slow

LINES = 200
OUTAGE_S = 10


def numbered(text: str) -> list[str]:
    return [line for line in text.splitlines() if "| line " in line]


def test_a_storage_outage_loses_no_work_and_no_log_line(tmp_path: Path) -> None:
    data = tmp_path / "azurite"
    servers = [start_azurite(data)]
    # a node cut off from the store stops its attempt at 70 % of the stale limit (it could be
    # replaced then): the outage must be shorter than that for the attempt to live through it
    stale = ("--stale-after-s", str(OUTAGE_S * 2.5))
    pool = FaultPool(servers[0].connection_string, tmp_path / "home", "outage", 2, extra_args=stale).start()
    job = tmp_path / "numbered.yml"
    job.write_text(
        f'command: for i in $(seq 1 {LINES}); do echo "line $i"; sleep 0.1; done\n'
        "resources:\n  instance_count: 2\n"
    )
    runs: list[RunRef] = []
    try:
        final, logs = outage(pool, job, data, servers, runs)
    except BaseException:
        pool.stop()
        if servers[-1].process is not None and servers[-1].process.poll() is not None:
            servers.append(start_azurite(data, ports=(servers[0].blob_port, servers[0].queue_port)))
        print(pool.dump(*runs))  # shown by pytest with the failure
        raise
    finally:
        pool.stop()
        servers[-1].stop()

    assert final["state"] == "succeeded", final
    assert final["attempt"] == 1 and final["free_requeues"] == 0, final["transitions"]
    want = [f"line {i}" for i in range(1, LINES + 1)]
    for node in ("node-0", "node-1"):
        got = [line.split("| ", 1)[1] for line in logs.splitlines() if line.startswith(f"{node}| line ")]
        assert got == want, (node, len(got))


def outage(
    pool: FaultPool, job: Path, data: Path, servers: list[Azurite], runs: list[RunRef]
) -> tuple[dict[str, Any], str]:
    """Run `job`, take the store away for OUTAGE_S once some lines are in; (final status, logs)."""
    cli = pool.cli
    run = cli.submit(job, "--pool", "outage")
    runs.append(RunRef(experiment=cli.json("status", run)["experiment"], id=run))

    def some_lines_shipped() -> bool:
        return len(numbered(cli.run("logs", run).stdout)) >= 20

    wait_for("the first lines in the store", some_lines_shipped, 90)
    assert cli.json("status", run)["state"] == "running", "the outage must fall inside the job"
    ports = (servers[0].blob_port, servers[0].queue_port)
    servers[-1].stop()
    time.sleep(OUTAGE_S)
    servers.append(start_azurite(data, ports=ports))  # the same account, ports and data
    final = cli.wait_state(run, {"succeeded", "failed", "canceled"}, timeout=120)
    return final, cli.run("logs", run, check=True).stdout
