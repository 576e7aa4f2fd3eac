"""Registered and curated environments: how a job file names them, the image a pool resolves
them to, what a node without a container runtime does, and what submit refuses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from jobrunner.client import Client
from jobrunner.errors import ConfigError, JobSpecError
from jobrunner.node.config import AgentConfig, parse_agent_config
from jobrunner.plan.launch_plan import plan_launch
from jobrunner.spec.environments import EnvironmentRef, check_map, parse_environment_ref, resolve_environment
from jobrunner.spec.job import Environment, JobSpec, load_job, parse_job
from jobrunner.store.client import Store
from jobrunner.store.pool_config import PoolConfig, write_pool_config

from .planning import gang, node, paths

CURATED = "mcr.microsoft.com/azureml/curated"
SUB = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"


@pytest.mark.parametrize(
    ("text", "name", "version", "registry"),
    [
        ("azureml:AzureML-sklearn-1.0-cpu:33", "AzureML-sklearn-1.0-cpu", "33", None),
        ("azureml:AzureML-lightgbm-3.3@latest", "AzureML-lightgbm-3.3", None, None),
        ("azureml:myTestEnv:18.04:2022", "myTestEnv", "18.04:2022", None),
        ("azureml:my-env", "my-env", None, None),
        (f"azureml:{SUB}/environments/train-env/versions/4", "train-env", "4", None),
        ("azureml://registries/azureml/environments/sklearn-1.5/labels/latest", "sklearn-1.5", None,
         "azureml"),
        ("azureml://registries/azureml/environments/sklearn-1.5/versions/41", "sklearn-1.5", "41", "azureml"),
        ("azureml://registries/team/environment/tools/versions/2", "tools", "2", "team"),
    ],
)  # fmt: skip
def test_every_form_azure_ml_writes_is_read(
    text: str, name: str, version: str | None, registry: str | None
) -> None:
    assert parse_environment_ref(text) == EnvironmentRef(text, name, version, registry)


@pytest.mark.parametrize("text", ["azureml:e@1", "azureml:", "azureml://registries/r/models/m/versions/1"])
def test_other_forms_are_refused_with_the_ones_that_work(text: str) -> None:
    with pytest.raises(ValueError, match="azureml:<name>@latest"):
        parse_environment_ref(text)


def test_curated_environments_resolve_to_their_published_images() -> None:
    def image(text: str, environments: dict[str, str] | None = None) -> str | None:
        resolved = resolve_environment(parse_environment_ref(text), environments or {})
        return resolved.image if resolved else None

    assert (
        image("azureml:AzureML-acpt-pytorch-2.8-cuda12.6@latest")
        == f"{CURATED}/acpt-pytorch-2.8-cuda12.6:latest"
    )
    assert image("azureml:AzureML-sklearn-0.24-ubuntu18.04-py37-cpu:1") == (
        f"{CURATED}/sklearn-0.24-ubuntu18.04-py37-cpu:1"
    )
    assert image("azureml:AzureML-Minimal@latest") == f"{CURATED}/minimal:latest"  # image names are lowercase
    assert (
        image("azureml://registries/azureml/environments/sklearn-1.5/versions/41")
        == f"{CURATED}/sklearn-1.5:41"
    )
    assert image("azureml://registries/team/environments/sklearn-1.5/versions/41") is None
    assert image("azureml:my-env:3") is None and image("azureml:AzureML-") is None
    # The pool's map wins over the rule; an exact version wins over the name.
    env = {"AzureML-Minimal": "mine/minimal:1", "my-env": "reg/my-env:any", "my-env:3": "reg/my-env:3"}
    assert image("azureml:AzureML-Minimal@latest", env) == "mine/minimal:1"
    assert image("azureml:my-env:3", env) == "reg/my-env:3"
    assert image("azureml:my-env:4", env) == image("azureml:my-env@latest", env) == "reg/my-env:any"
    resolved = resolve_environment(parse_environment_ref("azureml:my-env:3"), env)
    assert resolved is not None and "`my-env:3`" in resolved.how


def test_the_map_is_checked_where_it_is_written() -> None:
    assert check_map({"a": "img", "a:1": "img:1"}) == {"a": "img", "a:1": "img:1"}
    with pytest.raises(ValueError, match="`<name>:<version>`"):
        check_map({"azureml:a": "img"})
    with pytest.raises(ValueError, match="not an image name"):
        check_map({"a": "two words"})
    store = "https://acct.blob.core.windows.net"
    config = AgentConfig(store=store, pool="gpu", environments={"a:1": "x/y:1"})
    assert config.environments == {"a:1": "x/y:1"}
    text = f"store: {config.store}\npool: gpu\nenvironments: {{'a b': x}}\n"
    with pytest.raises(ConfigError, match=r"agent.yaml: environments: environment key 'a b'"):
        parse_agent_config(text, source="agent.yaml")


def test_a_registered_environment_loads_and_survives_the_store() -> None:
    spec = parse_job("command: x\nenvironment: azureml:AzureML-lightgbm-3.3@latest\n")
    assert spec.environment == "azureml:AzureML-lightgbm-3.3@latest"
    assert spec.environment_ref is not None and spec.environment_ref.name == "AzureML-lightgbm-3.3"
    assert JobSpec.model_validate_json(spec.model_dump_json(by_alias=True)) == spec


def job_dir(tmp_path: Path, environment: str, env_files: dict[str, str]) -> Path:
    for rel, text in env_files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "jobs").mkdir(exist_ok=True)
    job = tmp_path / "jobs" / "job.yml"
    job.write_text(f"command: x\nenvironment: {environment}\n")
    return job


def test_an_environment_file_is_read_as_if_inline(tmp_path: Path) -> None:
    files = {"env/image.yml": "$schema: s\nname: train\nversion: 2\nimage: python:3.12\ndescription: d\n"}
    spec = load_job(job_dir(tmp_path, "file:../env/image.yml", files))
    assert spec.environment == Environment(image="python:3.12", name="train", version=2, description="d")
    # A bare path to a YAML file is the same reference.
    assert load_job(job_dir(tmp_path, "../env/image.yml", files)).environment == spec.environment


def test_an_environment_file_with_a_conda_file_is_refused_as_inline(tmp_path: Path) -> None:
    files = {"env/conda.yml": "conda_file: deps.yml\nimage: python:3.12\nname: e\n"}
    with pytest.raises(JobSpecError) as caught:
        load_job(job_dir(tmp_path, "file:../env/conda.yml", files))
    (problem,) = caught.value.problems
    assert problem.field == "environment.conda_file" and "conda" in problem.message
    with pytest.raises(JobSpecError, match=r"environment: environment file `../env/none.yml` not found"):
        load_job(job_dir(tmp_path, "file:../env/none.yml", {}))
    with pytest.raises(JobSpecError, match="does not hold a mapping"):
        load_job(job_dir(tmp_path, "file:../env/list.yml", {"env/list.yml": "- a\n"}))


def test_a_plain_string_is_not_taken_for_an_image() -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_job("command: x\nenvironment: python:3.11\n")
    (problem,) = caught.value.problems
    assert problem.field == "environment" and "environment: {image: python:3.11}" in str(problem)


def plan_for(environment: str, **facts: object) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    spec = parse_job(f"command: python t.py\nenvironment: {environment}\n")
    plan = plan_launch(spec, replace(node(0), **facts), gang(1, 0), paths(0))  # type: ignore[arg-type]
    return plan.image, plan.notes, plan.processes[0].argv


def test_without_a_container_runtime_any_environment_runs_on_the_node_with_one_note() -> None:
    image, notes, argv = plan_for("azureml:AzureML-lightgbm-3.3@latest")
    assert image is None and argv[:2] == ("bash", "-c")
    assert notes == (
        f"image {CURATED}/lightgbm-3.3:latest (`azureml:AzureML-lightgbm-3.3@latest` by Azure ML's "
        "curated-environment rule) not used: no container runtime on node0; the command runs on the node",
    )
    image, notes, argv = plan_for("azureml:team-env:7")
    assert image is None and argv[:2] == ("bash", "-c")
    assert notes == (
        "environment `azureml:team-env:7` not used: no container runtime on node0; "
        "the command runs on the node",
    )


def test_with_a_container_runtime_a_resolved_environment_runs_in_its_image() -> None:
    image, notes, argv = plan_for(
        "azureml:team-env:7", container_runtime=True, environments=(("team-env", "r/t:7"),)
    )
    assert image == "r/t:7" and notes == ()
    assert argv[:2] == ("docker", "run") and argv[argv.index("r/t:7") + 1 :] == ("bash", "-c", "python t.py")
    image, _, _ = plan_for("azureml:AzureML-lightgbm-3.3:12", container_runtime=True)
    assert image == f"{CURATED}/lightgbm-3.3:12"


def test_with_a_container_runtime_an_unresolved_environment_names_the_key_to_add() -> None:
    with pytest.raises(JobSpecError, match=r"add `team-env:7: <image>` to the `environments` map") as caught:
        plan_for("azureml:team-env:7", container_runtime=True)
    assert caught.value.problems[0].field == "environment"


def test_submit_refuses_an_unresolved_environment_on_a_pool_that_runs_containers(
    azurite: str, tmp_path: Path
) -> None:
    store = Store.connect(azurite)
    client = Client(store)
    write_pool_config(store, PoolConfig(name="containers", max_nodes=2, kind="vmss", containers=True,
                                        environments={"team-env": "r/team:1"}))  # fmt: skip
    write_pool_config(store, PoolConfig(name="bare", max_nodes=2, containers=False))
    unknown = parse_job("command: x\nenvironment: azureml:other-env:3\n")
    with pytest.raises(JobSpecError) as caught:
        client.check_environment(unknown, "containers", source="job.yml")
    (problem,) = caught.value.problems
    assert problem.file == "job.yml" and problem.field == "environment"
    assert "pool 'containers'" in problem.message and "`other-env:3: <image>`" in str(problem.fix)
    known = parse_job("command: x\nenvironment: azureml:team-env@latest\n")
    assert client.check_environment(known, "containers", source="job.yml") == (
        "environment `azureml:team-env@latest` runs in r/team:1 (the pool's environments map (`team-env`))"
    )
    assert "the command runs on the node" in str(client.check_environment(unknown, "bare", source="job.yml"))
    assert "has not said" in str(client.check_environment(unknown, "never-published", source="job.yml"))
    assert client.check_environment(parse_job("command: x\n"), "containers", source="job.yml") is None
    job = tmp_path / "job.yml"
    job.write_text("command: x\nenvironment: azureml:other-env:3\n")
    with pytest.raises(JobSpecError, match="other-env:3"):
        client.submit(job, pool="containers")


def test_a_pool_stack_gives_its_agents_the_experiments_environments_and_its_own() -> None:
    from components.config import environment_name, environment_version
    from components.gpu_pool import agent_config
    from trainstack.stack import load_stack

    stack = load_stack("pool", Path(__file__).resolve().parents[2], check_jobs=False).config
    (pool,) = stack.pools
    own = pool.model_copy(update={"environments": {"team-env": "r/team:1", "mnist-env": "r/override:2"}})
    environments = stack.pool_environments(own)
    (experiment,) = stack.experiments
    name, image = environment_name(experiment.name), experiment.environment.image
    assert environments == {
        f"{name}:{environment_version(image)}": image,
        name: "r/override:2",  # the pool's own entry wins
        "team-env": "r/team:1",
    }
    config = agent_config(own, account="acct", client_id=None, datastores={}, environments=environments)
    assert config.environments == environments
    ref = parse_environment_ref(f"azureml:{name}:{environment_version(image)}")
    assert resolve_environment(ref, config.environments).image == image  # type: ignore[union-attr]


def test_a_node_with_containers_fails_an_unresolved_environment_as_the_jobs_fault(
    azurite: str, tmp_path: Path
) -> None:
    """A pool that published nothing lets submit through with a note; the node that then
    cannot resolve the environment fails the run as the job's fault, naming the key."""
    from jobrunner.api import FailureKind, JobState, NodeFacts
    from jobrunner.node.agent import AgentSettings
    from jobrunner.node.attempt import Timing
    from tests.runner.agents import run_to_end

    store = Store.connect(azurite)
    pool = "env-unresolved"
    write_pool_config(store, PoolConfig(name=pool, max_nodes=1))  # says nothing of containers
    job = tmp_path / "job.yml"
    job.write_text("command: 'true'\nenvironment: azureml:team-env:7\n")
    client = Client(store, pool=pool)
    assert "has not said" in str(client.check_environment(load_job(job), pool, source=str(job)))
    run = client.submit(job)
    settings = AgentSettings(
        pool=pool, name=f"{pool}-0", work_dir=tmp_path / "agent", timing=Timing(status_poll_s=0.2)
    )
    facts = NodeFacts(name=f"{pool}-0", address="127.0.0.1", container_runtime=True)
    run_to_end(store, settings, run.id, facts=facts)
    final = client.status(run.id)
    assert final.state is JobState.FAILED and final.failure_kind is FailureKind.USER, final
    assert "add `team-env:7: <image>`" in str(final.reason)
