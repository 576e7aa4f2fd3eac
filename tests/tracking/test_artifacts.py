"""MLflow artifacts that a job logs with plain MLflow on a local pool are kept beside the run's
outputs in the store: `jobrunner outputs --download` brings them with the outputs, MLflow's own
client downloads the same bytes through the tracking server, and a run that only claims to be
a job run (its tags) cannot write under that job run."""

from __future__ import annotations

import json
from pathlib import Path

from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import find_run
from jobrunner.tracking.runs import EXPERIMENT_TAG, RUN_ID_TAG, artifacts_prefix, read_record
from tests.runner.conftest import Cli
from tests.tracking.conftest import STEPS


def test_a_jobs_artifact_is_downloaded_with_its_outputs_and_by_mlflow(
    tracked_pool: Cli, example_run: str, azurite: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    store = Store.connect(azurite)
    ref = find_run(store, example_run)
    names = [b.name for b in store.list(RUNS, artifacts_prefix(ref))]
    assert names == [artifacts_prefix(ref) + "/summary.json"]

    tracked_pool.run("outputs", example_run, "--download", str(tmp_path / "out"), check=True)
    downloaded = tmp_path / "out" / "mlflow-artifacts" / "summary.json"
    summary = json.loads(downloaded.read_text())
    assert summary["steps"] == STEPS

    record = read_record(store, ref)
    assert record is not None
    client = MlflowClient(tracking_uri=record.uri)
    assert [a.path for a in client.list_artifacts(record.run_id)] == ["summary.json"]
    through_mlflow = client.download_artifacts(record.run_id, "summary.json", str(tmp_path / "mlflow"))
    assert Path(through_mlflow).read_bytes() == downloaded.read_bytes()


def test_a_run_tagged_as_another_job_run_cannot_write_under_it(
    example_run: str, azurite: str, tracking_server: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    store = Store.connect(azurite)
    ref = find_run(store, example_run)
    before = {b.name: b.etag for b in store.list(RUNS, ref.prefix)}
    client = MlflowClient(tracking_uri=tracking_server)
    experiment = client.get_experiment_by_name("impostors") or client.create_experiment("impostors")
    experiment_id = experiment if isinstance(experiment, str) else experiment.experiment_id
    impostor = client.create_run(experiment_id, tags={RUN_ID_TAG: ref.id, EXPERIMENT_TAG: ref.experiment})
    for name in ("summary.json", "planted.json"):  # one to overwrite, one to add
        (tmp_path / name).write_text('{"steps": 0}')
        client.log_artifact(impostor.info.run_id, str(tmp_path / name))

    assert {b.name: b.etag for b in store.list(RUNS, ref.prefix)} == before
    kept = client.download_artifacts(impostor.info.run_id, "planted.json", str(tmp_path / "back"))
    assert Path(kept).read_text() == '{"steps": 0}'  # kept by the server, outside the store
