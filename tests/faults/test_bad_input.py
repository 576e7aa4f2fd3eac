"""Bad input anywhere ends in a typed, one-line error or a failed run with the reason, never a
traceback or a message that comes back forever: malformed job files at submit, queue messages
that do not parse, status.json and spec.json edited by hand."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from jobrunner.agent import Agent, AgentSettings
from jobrunner.client import Client
from jobrunner.gang import read_board
from jobrunner.messages import job_message
from jobrunner.poison import poison_queue
from jobrunner.status import RunRef, read_status
from jobrunner.store import RUNS, Store, queue_name
from tests.runner.conftest import REPO, Cli

MALFORMED = {
    "bad-yaml.yml": "command: [echo\n",
    "a-list.yml": "- command: echo hi\n",
    "typo.yml": "comand: echo hi\n",
    "no-command.yml": "display_name: nothing to run\n",
    "bad-count.yml": "command: echo\nresources:\n  instance_count: many\n",
    "empty.yml": "",
    "binary.yml": "\x00\x01\x02\xff",
}


@pytest.fixture
def cli(azurite: str, tmp_path: Path) -> Cli:
    env = {**os.environ, "JOBRUNNER_STORE": azurite, "JOBRUNNER_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(REPO)}  # fmt: skip
    return Cli(env, tmp_path)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_submit_of_a_malformed_job_file_is_one_line_and_exit_1(cli: Cli, tmp_path: Path, name: str) -> None:
    job = tmp_path / name
    job.write_bytes(MALFORMED[name].encode("latin-1"))
    done = cli.run("submit", str(job), "--pool", "nowhere")
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], done.stderr


def test_submit_of_a_missing_file_or_a_folder_is_one_line(cli: Cli, tmp_path: Path) -> None:
    for path in (tmp_path / "absent.yml", tmp_path):
        done = cli.run("submit", str(path))
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.fixture
def agent(azurite: str, tmp_path: Path, request: pytest.FixtureRequest) -> Agent:
    pool = f"bad-{request.node.name[5:20].replace('_', '-')}".lower().strip("-")
    config = AgentSettings(pool=pool, name=f"{pool}-0", work_dir=tmp_path / "agent", visibility_timeout_s=5)
    return Agent(Store.connect(azurite), config)


def _queued_run(agent: Agent, tmp_path: Path) -> RunRef:
    job = tmp_path / "job.yml"
    job.write_text("command: echo hi\nexperiment_name: bad-input\n")
    status = Client(agent.store, pool=agent.config.pool).submit(job)
    # the agent under test takes it from the queue; take the submit's own message away
    assert agent.store.receive(agent.queue, visibility_timeout_s=60) is not None
    return status.ref


def _poisoned(agent: Agent) -> list[dict[str, str]]:
    out = []
    while (m := agent.store.receive(poison_queue(agent.config.pool), visibility_timeout_s=60)) is not None:
        out.append(json.loads(bytes(m.content)))
    return out


def test_a_message_that_does_not_parse_goes_to_the_poison_queue(agent: Agent) -> None:
    agent.store.send(agent.queue, "\x00 not json at all")
    assert agent.step(threading.Event())
    (poisoned,) = _poisoned(agent)
    assert poisoned["message"] == "\x00 not json at all" and "not a job runner message" in poisoned["reason"]
    assert agent.store.receive(agent.queue, visibility_timeout_s=1) is None  # not back for another agent
    assert poison_queue(agent.config.pool) == f"{queue_name(agent.config.pool)}-poison"


def test_a_broken_message_naming_a_run_fails_that_run(agent: Agent, tmp_path: Path) -> None:
    ref = _queued_run(agent, tmp_path)
    agent.store.send(agent.queue, json.dumps({"kind": "job", "id": ref.id}))  # no attempt
    assert agent.step(threading.Event())
    (poisoned,) = _poisoned(agent)
    assert ref.id in poisoned["message"]
    status, _ = read_status(agent.store, ref)
    assert status.state == "failed" and status.failure_kind == "infrastructure"
    assert "not a job runner message" in (status.reason or "")


def test_a_status_edited_by_hand_fails_the_run_with_the_reason(
    agent: Agent, tmp_path: Path, cli: Cli
) -> None:
    ref = _queued_run(agent, tmp_path)
    agent.store.put(RUNS, ref.status_blob, b'{"id": 5, "state": "runing"}')
    done = cli.run("status", ref.id)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"runs/{ref.status_blob}" in line

    agent.store.send(agent.queue, job_message(ref, 1))
    assert agent.step(threading.Event())
    assert len(_poisoned(agent)) == 1
    status, _ = read_status(agent.store, ref)
    assert status.state == "failed" and f"runs/{ref.status_blob}" in (status.reason or "")
    shown = cli.json("status", ref.id)
    assert shown["state"] == "failed"
    assert ref.id in cli.run("list", "--json", check=True).stdout


def test_a_spec_edited_by_hand_fails_the_run(agent: Agent, tmp_path: Path) -> None:
    ref = _queued_run(agent, tmp_path)
    agent.store.put(RUNS, ref.spec_blob, b'{"command": 42}')
    agent.store.send(agent.queue, job_message(ref, 1))
    assert agent.step(threading.Event())
    (poisoned,) = _poisoned(agent)
    assert f"runs/{ref.spec_blob}" in poisoned["reason"]
    status, _ = read_status(agent.store, ref)
    assert status.state == "failed" and f"runs/{ref.spec_blob}" in (status.reason or "")
    assert agent.store.receive(agent.queue, visibility_timeout_s=1) is None  # not back for another agent


def test_a_gang_whose_spec_was_edited_by_hand_fails_the_run_and_leaves_the_board(
    agent: Agent, tmp_path: Path
) -> None:
    job = tmp_path / "gang.yml"
    job.write_text("command: echo hi\nexperiment_name: bad-input\nresources:\n  instance_count: 2\n")
    status = Client(agent.store, pool=agent.config.pool).submit(job)
    ref = status.ref
    peer = Agent(agent.store, AgentSettings(pool=agent.config.pool, name=f"{agent.config.name}-peer",
                                          work_dir=tmp_path / "peer", visibility_timeout_s=5))  # fmt: skip
    for a in (agent, peer):
        a._set("idle", None)  # their records, so that neither prunes the other from the gang
    assert agent.step(threading.Event())  # takes the job's message and posts the gang on the board
    assert read_board(agent.store, agent.config.pool)[0].find(ref.id, 1) is not None
    agent.store.put(RUNS, ref.spec_blob, b'{"command": 42}')

    waiting = threading.Thread(target=agent.step, args=(threading.Event(),))
    waiting.start()  # sits in the gang until the peer fills it
    assert peer.step(threading.Event())
    waiting.join(30)
    assert not waiting.is_alive()
    status, _ = read_status(agent.store, ref)
    assert status.state == "failed" and f"runs/{ref.spec_blob}" in (status.reason or "")
    assert read_board(agent.store, agent.config.pool)[0].entries == ()
