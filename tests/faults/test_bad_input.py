"""Bad input anywhere ends in a typed, one-line error or a failed run with the reason, never a
traceback or a message that comes back forever: malformed job files at submit, queue messages
that do not parse, status.json and spec.json edited by hand."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from jobrunner.client import Client
from jobrunner.store.client import RUNS, Store, queue_name
from jobrunner.store.poison import poison_queue
from jobrunner.store.pool_config import PoolConfig, write_pool_config
from jobrunner.store.status import DamagedRunFileError, RunRef, RunStatus, read_status
from tests.faults.pool import wait_for
from tests.runner.agents import serving
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
def pool() -> str:
    return f"bad-{uuid.uuid4().hex[:10]}"  # a queue of its own per test


def _submitted(store: Store, pool: str, tmp_path: Path, text: str = "command: echo hi\n") -> RunRef:
    job = tmp_path / "job.yml"
    job.write_text(f"experiment_name: bad-input\n{text}")
    return Client(store, pool=pool).submit(job).ref


def _poisoned(store: Store, pool: str) -> list[dict[str, str]]:
    out = []
    while (m := store.receive(poison_queue(pool), visibility_timeout_s=60)) is not None:
        out.append(json.loads(bytes(m.content)))
    return out


def _ended(store: Store, ref: RunRef) -> RunStatus:
    def check() -> RunStatus | None:
        try:
            status, _ = read_status(store, ref)
        except DamagedRunFileError:
            return None  # not replaced yet
        return status if status.state.terminal else None

    return wait_for(f"{ref.id} to end", check)  # type: ignore[return-value]


def test_a_message_that_does_not_parse_goes_to_the_poison_queue(
    azurite: str, pool: str, tmp_path: Path
) -> None:
    store = Store.connect(azurite)
    store.send(queue_name(pool), "\x00 not json at all")
    with serving(store, pool, tmp_path):
        (poisoned,) = wait_for("the poison queue", lambda: _poisoned(store, pool))
    assert poisoned["message"] == "\x00 not json at all"
    assert "not a job runner submission: not a JSON object" in poisoned["reason"]
    assert store.receive(queue_name(pool), visibility_timeout_s=1) is None  # not back for another agent
    assert poison_queue(pool) == f"{queue_name(pool)}-poison"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"id": "run-x"}, "nodes"), ({"id": "../etc", "nodes": 1}, "id"),
     ({"id": "run-x", "nodes": 10**9}, "nodes"), ({"id": "run-x", "nodes": 1, "timeout_s": -5}, "timeout_s"),
     ({"id": "run-x", "nodes": True}, "nodes"),
     ({"id": "run-x", "nodes": 1, "priority": "high"}, "priority"),
     ({"id": "run-x", "nodes": 1, "quota": {"team:x": 2}}, "quota")],
)  # fmt: skip
def test_a_submission_with_a_field_out_of_range_is_set_aside_naming_the_field(
    azurite: str, pool: str, tmp_path: Path, body: dict[str, object], field: str
) -> None:
    store = Store.connect(azurite)
    store.send(queue_name(pool), json.dumps(body))
    with serving(store, pool, tmp_path):
        (poisoned,) = wait_for("the poison queue", lambda: _poisoned(store, pool))
    assert f"field `{field}`" in poisoned["reason"], poisoned


def test_a_broken_message_naming_a_run_fails_that_run(azurite: str, pool: str, tmp_path: Path) -> None:
    store = Store.connect(azurite)
    write_pool_config(store, PoolConfig(name=pool, max_nodes=1))
    ref = _submitted(store, pool, tmp_path)
    store.send(queue_name(pool), json.dumps({"kind": "job", "id": ref.id}))  # no node count
    with serving(store, pool, tmp_path):
        status = _ended(store, ref)
        (poisoned,) = wait_for("the poison queue", lambda: _poisoned(store, pool))
    assert ref.id in poisoned["message"]
    assert status.state == "failed" and status.failure_kind == "infrastructure"
    assert "not a job runner submission" in (status.reason or "")
    assert [t.state for t in status.transitions] == ["queued", "failed"]  # never started


def test_a_status_edited_by_hand_fails_the_run_with_the_reason(
    azurite: str, pool: str, tmp_path: Path, cli: Cli
) -> None:
    store = Store.connect(azurite)
    ref = _submitted(store, pool, tmp_path)
    store.put(RUNS, ref.status_blob, b'{"id": 5, "state": "runing"}')
    done = cli.run("status", ref.id)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"runs/{ref.status_blob}" in line

    with serving(store, pool, tmp_path):
        status = _ended(store, ref)
    assert status.state == "failed" and f"runs/{ref.status_blob}" in (status.reason or "")
    shown = cli.json("status", ref.id)
    assert shown["state"] == "failed"
    assert ref.id in cli.run("list", "--json", check=True).stdout


@pytest.mark.parametrize("nodes", [1, 2])
def test_a_spec_edited_by_hand_fails_the_run_and_frees_its_nodes(
    azurite: str, pool: str, tmp_path: Path, nodes: int
) -> None:
    store = Store.connect(azurite)
    ref = _submitted(store, pool, tmp_path, f"command: echo hi\nresources:\n  instance_count: {nodes}\n")
    store.put(RUNS, ref.spec_blob, b'{"command": 42}')
    with serving(store, pool, tmp_path, nodes) as agents:
        status = _ended(store, ref)
        wait_for("the nodes idle", lambda: all(a.node.idle for a in agents))
    assert status.state == "failed" and f"runs/{ref.spec_blob}" in (status.reason or "")
    assert store.receive(queue_name(pool), visibility_timeout_s=1) is None  # nothing comes back


def test_a_gang_larger_than_the_pool_fails_at_intake_with_the_fix(
    azurite: str, pool: str, tmp_path: Path
) -> None:
    # submitted before the pool said its size (as from an older client, or before it shrank)
    store = Store.connect(azurite)
    ref = _submitted(store, pool, tmp_path, "command: echo hi\nresources:\n  instance_count: 3\n")
    write_pool_config(store, PoolConfig(name=pool, max_nodes=2))
    with serving(store, pool, tmp_path, 2):
        status = _ended(store, ref)
    assert status.state == "failed" and status.failure_kind == "user"
    assert f"asks for 3 nodes and pool {pool!r} has at most 2" in (status.reason or "")
    assert "`resources.instance_count` to 2 or less" in (status.reason or "")
    assert [t.state for t in status.transitions] == ["queued", "failed"]  # never started
    assert store.receive(queue_name(pool), visibility_timeout_s=1) is None  # nothing comes back
