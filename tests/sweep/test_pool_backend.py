"""A sweep's parent run in a real store (Azurite), driven by the leader's conductor with no
agents: trials are ordinary runs whose status this test moves by hand. Covers the record's
persistence between leaders, the trials' ids, tags and code, cancel and conclusion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobrunner.api import JobState
from jobrunner.client import Client
from jobrunner.errors import ConflictError, JobSpecError
from jobrunner.scheduler.azure_store import AzurePoolStore
from jobrunner.spec.environments import resolve_environment
from jobrunner.store.client import RUNS, Store
from jobrunner.store.pool_config import PoolConfig, write_pool_config
from jobrunner.store.status import RunRef, RunStatus, read_status, update_status
from jobrunner.sweep.conductor import SweepConductor
from jobrunner.sweep.load import load_sweep
from jobrunner.sweep.parent import MARKERS, read_parent, trial_id, write_parent
from jobrunner.sweep.pool_backend import PoolTrialBackend
from tests.corpus import AML_SWEEPS, corpus_files, needs_corpus
from tests.sweep.fixtures import write_sweep


@pytest.fixture
def store(azurite: str) -> Store:
    return Store.connect(azurite)


def _submit(store: Store, tmp_path: Path, pool: str, **changes: object) -> RunStatus:
    return Client(store, pool=pool).submit_sweep(write_sweep(tmp_path, **changes))


def _end(store: Store, ref: RunRef, state: JobState) -> None:
    update_status(store, ref, lambda s: s.moved_to(state, note="by the test"))


def _trials(store: Store, parent: RunStatus) -> list[RunStatus]:
    return [s for s in Client(store).list(parent.experiment) if s.parent == parent.id]


def test_submit_writes_the_parent_its_record_and_marker(store: Store, tmp_path: Path) -> None:
    parent = _submit(store, tmp_path, "sw-submit")
    assert parent.kind == "sweep" and parent.state is JobState.QUEUED
    record = read_parent(store, parent.ref)[0].record
    assert record.trials == [] and not record.done
    markers = AzurePoolStore(store, "sw-submit").list(MARKERS).entries
    assert [m.name for m in markers] == [MARKERS + parent.id]
    assert store.get(RUNS, parent.ref.code_blob)[0]  # uploaded once, for every trial


def test_a_trial_is_an_ordinary_run_with_its_params_as_tags_and_submitting_it_again_is_one_run(
    store: Store, tmp_path: Path
) -> None:
    parent = _submit(store, tmp_path, "sw-trial")
    spec = read_parent(store, parent.ref)[0].spec()
    backend = PoolTrialBackend(store, parent)
    params = {"lr": 0.01, "opt": "adam"}
    first = backend.submit_trial(0, spec.trial_job(params), params)
    assert first == trial_id(parent.id, 0) == backend.submit_trial(0, spec.trial_job(params), params)
    (trial,) = _trials(store, parent)
    assert trial.id == first and trial.state is JobState.QUEUED
    assert trial.tags == {"lr": "0.01", "opt": "adam", "trainstack.sweep": parent.id, "trainstack.trial": "0"}
    assert store.get(RUNS, trial.ref.code_blob)[0] == store.get(RUNS, parent.ref.code_blob)[0]
    assert backend.trial_state(first) == "queued"
    assert backend.metric_history(first, "loss") == []  # not tracked: no MLflow run
    backend.cancel_trial(first, "by the test")
    assert backend.trial_state(first) == "canceled"


def test_a_new_leader_carries_on_from_the_record_and_the_parent_concludes(
    store: Store, tmp_path: Path
) -> None:
    limits = {"max_total_trials": 5, "max_concurrent_trials": 2}
    parent = _submit(store, tmp_path, "sw-lead", limits=limits)
    SweepConductor(store, "sw-lead").drive_one(parent.ref)
    assert read_status(store, parent.ref)[0].state is JobState.RUNNING
    assert len(_trials(store, parent)) == 2
    for _ in range(3):  # every pass by a new leader: nothing doubled
        SweepConductor(store, "sw-lead").drive_one(parent.ref)
    assert len(_trials(store, parent)) == 2
    seen = 2
    while seen < 5 or not read_status(store, parent.ref)[0].state.terminal:
        for t in _trials(store, parent):
            if not t.state.terminal:
                _end(store, t.ref, JobState.SUCCEEDED)
        SweepConductor(store, "sw-lead").drive_one(parent.ref)
        unfinished = [t for t in _trials(store, parent) if not t.state.terminal]
        assert len(unfinished) <= 2
        seen = len(_trials(store, parent))
    assert seen == 5
    final = read_status(store, parent.ref)[0]
    assert final.state is JobState.FAILED and "no trial logged loss" in (final.reason or "")
    assert AzurePoolStore(store, "sw-lead").list(MARKERS).entries == ()


def test_a_stale_record_write_is_refused(store: Store, tmp_path: Path) -> None:
    parent = _submit(store, tmp_path, "sw-etag")
    doc, etag = read_parent(store, parent.ref)
    write_parent(store, parent.ref, doc, etag)
    with pytest.raises(ConflictError):
        write_parent(store, parent.ref, doc, etag)


def test_canceling_the_parent_cancels_its_trials(store: Store, tmp_path: Path) -> None:
    parent = _submit(store, tmp_path, "sw-cancel")
    conductor = SweepConductor(store, "sw-cancel")
    conductor.drive_one(parent.ref)
    Client(store).cancel(parent.id)
    conductor.drive_one(parent.ref)
    trials = _trials(store, parent)
    assert trials and all(t.state is JobState.CANCELED for t in trials)  # queued: canceled at once
    conductor.drive_one(parent.ref)
    final = read_status(store, parent.ref)[0]
    assert final.state is JobState.CANCELED and final.reason == "canceled on request"
    assert read_parent(store, parent.ref)[0].record.trials[0].finished_at is not None


@needs_corpus
@pytest.mark.parametrize("path", corpus_files(AML_SWEEPS, "*.yml"), ids=lambda p: p.name)
def test_corpus_sweeps_submit_to_a_pool_of_containers_given_an_environment_mapping(
    store: Store, tmp_path: Path, path: Path
) -> None:
    """Every corpus sweep becomes a parent run on a pool whose nodes run containers once its
    registered environment is in the pool's map (the hello-sweep also runs end to end, in
    test_sweep_pool; the job-sweeps read their data from Azure, which this machine cannot)."""
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('trial')\n")
    trial = load_sweep(copy).stand_in_job()
    assert trial.environment_ref is not None
    pool = "sw-corpus-" + path.stem.split("__")[-2].replace("_", "-")[:20]
    client = Client(store, pool=pool)
    write_pool_config(store, PoolConfig(name=pool, max_nodes=4, containers=True, environments={}))
    if resolve_environment(trial.environment_ref, {}) is None:
        with pytest.raises(JobSpecError) as refused:
            client.submit_sweep(copy)
        assert trial.environment_ref.key in str(refused.value)
    mapping = {trial.environment_ref.key: "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"}
    write_pool_config(store, PoolConfig(name=pool, max_nodes=4, containers=True, environments=mapping))
    parent = client.submit_sweep(copy)
    assert parent.kind == "sweep"
    SweepConductor(store, pool).drive_one(parent.ref)
    trials = _trials(store, parent)
    assert len(trials) == min(load_sweep(copy).file.limits.max_concurrent_trials or 99, 20)
