"""Datastore names resolve to blob containers: through a pool's agent config map when there is
one (staging on the node, `jobrunner data --config`), else to the container named after the
datastore, `_` written as `-` (Azurite, like Azure, refuses `_` in container names)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobrunner.api import JobState
from jobrunner.cli.main import app
from jobrunner.client import Client
from jobrunner.errors import ConfigError
from jobrunner.node.agent import AgentSettings
from jobrunner.node.attempt import Timing
from jobrunner.node.config import AgentConfig, DatastoreLocation, render_cloud_init
from jobrunner.node.pool_agent import agent_settings
from jobrunner.store.client import Store
from jobrunner.store.datastores import Datastores, default_container
from tests.runner.agents import run_to_end

MAPPED = {
    "training_data": DatastoreLocation(container="td-mapped"),
    "results_store": DatastoreLocation(container="rs-mapped"),
}


@pytest.mark.parametrize(
    ("name", "container"),
    [
        ("workspaceblobstore", "workspaceblobstore"),
        ("training_data", "training-data"),
        ("Raw_Data_2", "raw-data-2"),
        ("ab", None),  # too short
        ("a" * 64, None),  # too long
        ("data__set", None),  # `--` is not allowed
        ("_data", None),
        ("data.set", None),
    ],
)
def test_an_unmapped_name_is_the_container_named_after_it(name: str, container: str | None) -> None:
    assert default_container(name) == container


def test_the_map_wins_and_an_unusable_name_says_how_to_map_it() -> None:
    datastores = Datastores({"ab": DatastoreLocation(container="short-name")}, source="agent.yaml")
    assert datastores.container("ab") == "short-name"
    assert datastores.container("training_data") == "training-data"
    with pytest.raises(ConfigError) as caught:
        datastores.container("x.y")
    (problem,) = caught.value.problems
    assert (problem.file, problem.field) == ("agent.yaml", "datastores.x.y")
    assert problem.fix is not None and "`datastores:` in agent.yaml" in problem.fix
    assert "Traceback" not in str(caught.value) and "x.y" in str(caught.value)


def test_a_datastore_in_another_account_uses_that_account(azurite: str) -> None:
    store = Store.connect(azurite)
    datastores = Datastores(
        {
            "home": DatastoreLocation(container="home-data", account="stjobs"),
            "elsewhere": DatastoreLocation(container="other-data", account="stother"),
        },
        home_account="stjobs",
    )
    assert datastores.resolve(store, "home") == (store, "home-data")
    other, container = datastores.resolve(store, "elsewhere")
    assert container == "other-data" and other.description == "https://stother.blob.core.windows.net"
    assert datastores.resolve(store, "elsewhere")[0] is other  # one client per account
    assert datastores.resolve(store, "plain_name") == (store, "plain-name")


def test_agent_settings_carry_the_config_map() -> None:
    config = AgentConfig.model_validate(
        {"store": "https://stpool.blob.core.windows.net", "pool": "p1", "datastores": MAPPED}
    )
    settings = agent_settings(config, source="/etc/jobrunner/agent.yaml")
    assert settings.datastores.mapped == {"results_store": "rs-mapped", "training_data": "td-mapped"}


def _invoke(azurite: str, *args: str) -> tuple[int, str, str]:
    env = {"JOBRUNNER_STORE": azurite}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_data_upload_to_an_underscored_datastore_on_azurite(azurite: str, tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "a.txt").write_text("a")
    datastore = ("--datastore", "training_data", "--path", "sets/a")
    code, out, err = _invoke(azurite, "data", "upload", str(tmp_path / "set"), *datastore)
    assert code == 0, err
    assert "azureml://datastores/training_data/paths/sets/a" in out
    assert [b.name for b in Store.connect(azurite).list("training-data", "sets/a")] == ["sets/a/a.txt"]
    code, _, err = _invoke(azurite, "data", "download", str(tmp_path / "back"), *datastore)
    assert code == 0, err
    assert (tmp_path / "back" / "a.txt").read_text() == "a"


def test_data_upload_refuses_a_name_without_a_container_in_one_line(azurite: str, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("f")
    code, out, err = _invoke(azurite, "data", "upload", str(tmp_path / "f.txt"), "--datastore", "ab")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "datastore 'ab'" in err and "Traceback" not in err


def test_data_with_an_agent_config_uses_its_store_and_map(azurite: str, tmp_path: Path) -> None:
    config = AgentConfig(store=azurite, pool="mapped-data", datastores=MAPPED)
    path = tmp_path / "custom-data"
    path.write_text(render_cloud_init(config))
    (tmp_path / "f.txt").write_text("f")
    env = {k: v for k, v in os.environ.items() if k != "JOBRUNNER_STORE"}  # the config names the store
    result = CliRunner().invoke(
        app,
        ["data", "upload", str(tmp_path / "f.txt"), "--datastore", "training_data", "--config", str(path)],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    assert [b.name for b in Store.connect(azurite).list("td-mapped")] == ["f.txt"]


def test_a_pool_agent_stages_inputs_and_outputs_through_its_map(azurite: str, tmp_path: Path) -> None:
    """A real agent with a datastore map runs a job reading and writing mapped datastores."""
    store = Store.connect(azurite)
    datastores = Datastores(MAPPED)
    pool = "datastore-map"
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "x.txt").write_text("input")
    client = Client(store, pool=pool, datastores=datastores)
    assert client.upload_data(tmp_path / "set", datastore="training_data", path="sets/x") == 1
    job = tmp_path / "job.yml"
    job.write_text(
        "command: cat ${{inputs.data}}/x.txt > ${{outputs.out}}/y.txt\n"
        "experiment_name: datastore-map\n"
        "inputs:\n"
        "  data: {type: uri_folder, path: azureml://datastores/training_data/paths/sets/x}\n"
        "outputs:\n"
        "  out:\n"
        "    type: uri_folder\n"
        "    path: azureml://datastores/results_store/paths/runs/${{name}}\n"
    )
    run = client.submit(job)
    settings = AgentSettings(
        pool=pool, name=f"{pool}-0", work_dir=tmp_path / "agent", datastores=datastores,
        timing=Timing(status_poll_s=0.2, sync_s=60),
    )  # fmt: skip
    run_to_end(store, settings, run.id)
    final = client.status(run.id)
    assert final.state is JobState.SUCCEEDED, final
    assert [b.name for b in store.list("rs-mapped", f"runs/{run.id}")] == [f"runs/{run.id}/y.txt"]
    assert store.get("rs-mapped", f"runs/{run.id}/y.txt")[0] == b"input"
    assert store.list("training-data", "sets/x") == []  # nothing went to the unmapped name


@pytest.mark.parametrize("name", ["runs", "pools", "RUNS", "Pools"])
def test_the_runners_own_containers_are_never_a_datastore(name: str) -> None:
    for datastores in (Datastores(), Datastores({"x": DatastoreLocation(container="data-x")}, strict=True)):
        with pytest.raises(ConfigError, match="runner's own container"):
            datastores.container(name)


def test_a_map_cannot_send_a_datastore_into_the_runners_containers() -> None:
    with pytest.raises(ValueError, match="runner's own"):
        DatastoreLocation(container="runs")


def test_a_deployed_pool_resolves_only_what_its_map_names_and_workspaceblobstore() -> None:
    config = AgentConfig(
        store="https://stjobs.blob.core.windows.net",
        pool="a100",
        datastores={"training_data": MAPPED["training_data"]},
    )
    datastores = Datastores.from_config(config, source="/etc/jobrunner/agent.yaml")
    assert datastores.container("training_data") == "td-mapped"
    assert datastores.container("workspaceblobstore") == "workspaceblobstore"
    with pytest.raises(ConfigError) as caught:
        datastores.container("agent_image_files")
    (problem,) = caught.value.problems
    assert problem.file == "/etc/jobrunner/agent.yaml" and "not one of this pool's" in problem.message
    assert "training_data" in problem.message
    # a local pool (a connection string, no map) keeps naming containers after the datastore
    local = Datastores.from_config(AgentConfig(store="UseDevelopmentStorage=true;A=b", pool="local"))
    assert local.container("training_data") == "training-data"
