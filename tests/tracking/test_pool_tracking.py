"""The Azure side of tracking, at plan level: a GPU pool's agents and jobs log to the stack's
own Azure ML workspace (its MLflow tracking URI in the agent config, AzureML Data Scientist
for the pool identity on that workspace, azureml-mlflow in the image); and the pure pieces
that put MLflow's variables in front of a job."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from components import roles
from components.agent_image import JOB_PACKAGES
from jobrunner.errors import ConfigError
from jobrunner.node.config import parse_agent_config
from jobrunner.plan import environment as V
from jobrunner.spec.job import parse_job
from jobrunner.tracking.runs import TrackingRecord, rest_uri, with_tracking
from trainstack.plan import StackPlan, record_stack

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE_URI = re.compile(
    r"azureml://(?P<region>[a-z0-9]+)\.api\.azureml\.ms/mlflow/v1\.0/subscriptions/[^/]+/resourceGroups/"
    r"(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)


@pytest.fixture(scope="module")
def plan() -> StackPlan:
    return record_stack("pool", ROOT)


def test_the_agent_config_names_the_stacks_workspace_as_tracking_server(plan: StackPlan) -> None:
    (vmss,) = plan.of_type("azure-native:compute:VirtualMachineScaleSet")
    custom = base64.b64decode(vmss.inputs["virtualMachineProfile"]["osProfile"]["customData"])
    loaded = parse_agent_config(custom, source="customData")
    assert loaded.tracking_uri is not None
    found = WORKSPACE_URI.fullmatch(loaded.tracking_uri)
    assert found, loaded.tracking_uri
    (workspace,) = plan.of_type("azure-native:machinelearningservices:Workspace")
    assert found["ws"] == workspace.inputs["workspaceName"]
    assert found["rg"] == workspace.inputs["resourceGroupName"]
    assert found["region"] == workspace.inputs["location"].replace(" ", "").lower()


def test_the_pool_identity_may_log_to_the_workspace(plan: StackPlan) -> None:
    (vmss,) = plan.of_type("azure-native:compute:VirtualMachineScaleSet")
    grants = [
        g
        for g in plan.of_type("azure-native:authorization:RoleAssignment")
        if g.inputs["roleDefinitionId"].endswith("/" + roles.AZUREML_DATA_SCIENTIST)
    ]
    assert len(grants) == 1
    (workspace,) = plan.of_type("azure-native:machinelearningservices:Workspace")
    scope = grants[0].inputs["scope"]
    assert scope.endswith(
        f"/resourceGroups/{workspace.inputs['resourceGroupName']}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{workspace.inputs['workspaceName']}"
    )
    assert grants[0].inputs["principalType"] == "ServicePrincipal"
    assert grants[0].parent == vmss.parent  # the pool's own grant


def test_the_image_installs_the_agents_mlflow_client_and_azureml_mlflow_for_jobs(plan: StackPlan) -> None:
    (template,) = plan.of_type("azure-native:virtualmachineimages:VirtualMachineImageTemplate")
    (shell,) = [s for s in template.inputs["customize"] if s["type"] == "Shell"]
    assert "JOBRUNNER_EXTRAS=tracking bash /tmp/install-agent.sh" in shell["inline"][0]
    assert shell["inline"][0].endswith(" ".join(JOB_PACKAGES))
    assert any(p.startswith("azureml-mlflow==") for p in JOB_PACKAGES)
    script = (ROOT / "packaging" / "install-agent.sh").read_text()
    assert '"$wheel${JOBRUNNER_EXTRAS:+[$JOBRUNNER_EXTRAS]}"' in script
    pins = (ROOT / "packaging" / "jobrunner" / "pyproject.toml").read_text()
    assert 'tracking = ["mlflow-skinny==' in pins


def test_agent_config_refuses_what_is_not_a_tracking_server() -> None:
    base = "store: https://stpool1.blob.core.windows.net\npool: a100\n"
    with pytest.raises(ConfigError) as caught:
        parse_agent_config(base + "trackingUri: mlruns\n", source="agent.yaml")
    assert "agent.yaml: trackingUri:" in str(caught.value) and "azureml://" in str(caught.value)
    ok = parse_agent_config(base + "trackingUri: http://10.0.0.4:5000\n", source="agent.yaml")
    assert ok.tracking_uri == "http://10.0.0.4:5000"


def test_azureml_uris_are_spoken_to_over_https_and_others_unchanged() -> None:
    uri = "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/r/providers/x/workspaces/w"
    assert (
        rest_uri(uri)
        == "https://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/r/providers/x/workspaces/w"
    )
    assert rest_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


RECORD = TrackingRecord(uri="http://127.0.0.1:5000", run_id="abc", experiment_id="1", experiment="exp")


def test_the_job_gets_mlflows_variables_under_its_own() -> None:
    text = (
        "command: python train.py\nenvironment_variables:\n  EPOCHS: '3'\n"
        "  MLFLOW_ENABLE_ASYNC_LOGGING: 'false'\n  MLFLOW_DISABLE_TELEMETRY: 'false'\n"
    )
    spec = parse_job(text, source="job.yml")
    env = with_tracking(spec, RECORD).environment_variables
    assert env == {
        "EPOCHS": "3",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",  # the job's own choice stands
        "MLFLOW_DISABLE_TELEMETRY": "false",
        "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1",
        V.MLFLOW_REGISTRY_URI: "http://127.0.0.1:5000",  # spares each call a search for Spark
        V.MLFLOW_TRACKING_URI: "http://127.0.0.1:5000",
        V.MLFLOW_RUN_ID: "abc",
        V.MLFLOW_EXPERIMENT_NAME: "exp",
    }
    assert with_tracking(spec, None) is spec
    stray = parse_job(
        "command: python train.py\nenvironment_variables:\n  MLFLOW_RUN_ID: old\n", source="job.yml"
    )
    assert with_tracking(stray, RECORD).environment_variables[V.MLFLOW_RUN_ID] == "abc"  # one run per job run


def test_a_job_with_its_own_tracking_server_keeps_it() -> None:
    text = "command: python train.py\nenvironment_variables:\n  MLFLOW_TRACKING_URI: sqlite:///outputs/mlflow.db\n"
    spec = parse_job(text, source="job.yml")
    assert with_tracking(spec, RECORD).environment_variables == {
        "MLFLOW_TRACKING_URI": "sqlite:///outputs/mlflow.db"
    }
