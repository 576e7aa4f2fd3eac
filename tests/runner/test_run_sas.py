"""A job that names blobs of its own run gets a SAS URL for each and nothing more: on a real
Azurite, a real job process writes and reads its blob back, and is refused another run's
spec, its own run's spec, any blob it did not name, and listing `runs` or `pools`."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydantic
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient
from azure.storage.queue import QueueServiceClient

from jobrunner.api import Gang, GangMember, NodeFacts, NodePaths
from jobrunner.local.azurite import ACCOUNT, azurite_executable, free_port
from jobrunner.node.isolation import job_environment
from jobrunner.plan import environment as V
from jobrunner.plan.launch_plan import plan_launch
from jobrunner.spec.job import JobSpec, parse_job
from jobrunner.spec.models import StoreAccess
from jobrunner.store.client import POOLS, RUNS, Store
from jobrunner.store.run_sas import MAX_LIFETIME, SLACK, job_blob, lifetime, run_store_access
from jobrunner.store.status import RunRef
from tests.loopback_tls import LoopbackTls

# The job: what it may do with its URL, and each thing it tries that it must not do.
JOB = r"""
import json, os, sys
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, ContainerClient

urls = json.loads(os.environ["TRAINSTACK_RUN_SAS_URLS"])
own = urls["checkpoints/latest.pt"]
base, sas = own.split("?", 1)
runs = base.split("/runs/", 1)[0] + "/runs"
account = runs.rsplit("/", 1)[0]
result = {}
BlobClient.from_blob_url(own).upload_blob(b"step 100", overwrite=True)
result["read_back"] = BlobClient.from_blob_url(own).download_blob().readall().decode()

def attempt(name, call):
    try:
        call()
        result[name] = "allowed"
    except HttpResponseError as exc:
        result[name] = exc.status_code

victim = runs + "/" + sys.argv[1] + "?" + sas
mine = runs + "/" + sys.argv[2] + "?" + sas
beside = base.rsplit("/", 1)[0] + "/other.pt?" + sas
attempt("read_victim_spec", lambda: BlobClient.from_blob_url(victim).download_blob().readall())
attempt("write_victim_spec", lambda: BlobClient.from_blob_url(victim).upload_blob(b"{}", overwrite=True))
attempt("read_own_spec", lambda: BlobClient.from_blob_url(mine).download_blob().readall())
attempt("write_unnamed_blob", lambda: BlobClient.from_blob_url(beside).upload_blob(b"x"))
def listing(url):
    return lambda: list(ContainerClient.from_container_url(url + "?" + sas).list_blobs())

attempt("list_runs", listing(runs))
attempt("list_pools", listing(account + "/pools"))
print(json.dumps(result))
"""

SPEC = """
command: python job.py
limits: {timeout: 600}
trainstack:
  store: {blobs: [checkpoints/latest.pt, progress.json]}
"""


@pytest.fixture
def store(azurite: str) -> Store:
    return Store.connect(azurite)


def _plan_env(spec: JobSpec, tmp_path: Path, store: Store, ref: RunRef) -> dict[str, str]:
    gang = Gang(ref.id, 1, (GangMember("node0", "127.0.0.1", 0),), 0)
    paths = NodePaths(root=str(tmp_path), code=str(tmp_path))
    access = run_store_access(store, ref, spec)
    plan = plan_launch(spec, NodeFacts("node0", "127.0.0.1"), gang, paths, store_access=access)
    return dict(plan.processes[0].env)


def test_a_job_reaches_the_blobs_it_named_and_nothing_else(store: Store, tmp_path: Path) -> None:
    mine, victim = RunRef(experiment="sas", id="run-mine"), RunRef(experiment="sas", id="run-victim")
    for ref in (mine, victim):
        store.put(RUNS, ref.spec_blob, b'{"command": "echo mine"}')
    store.put(POOLS, "gpu/board.json", b"{}")
    spec = parse_job(SPEC)
    (tmp_path / "job.py").write_text(JOB)
    env = job_environment({"PATH": "/usr/bin:/bin"}, _plan_env(spec, tmp_path, store, mine))
    done = subprocess.run(
        [sys.executable, "job.py", victim.spec_blob, mine.spec_blob],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result.pop("read_back") == "step 100"
    assert result == {
        "read_victim_spec": 403,
        "write_victim_spec": 403,
        "read_own_spec": 403,
        "write_unnamed_blob": 403,
        "list_runs": 403,
        "list_pools": 403,
    }
    assert store.get(RUNS, job_blob(mine, "checkpoints/latest.pt"))[0] == b"step 100"
    assert store.get(RUNS, victim.spec_blob)[0] == b'{"command": "echo mine"}'
    # The store's own credential stays with the agent.
    key = store.signing_key(datetime.now(UTC), datetime.now(UTC))[1]
    assert isinstance(key, str) and all(key not in value for value in env.values())
    assert not [k for k in env if k.startswith(("JOBRUNNER_", "AZURE_"))]


def test_the_urls_expire_with_the_jobs_timeout(store: Store) -> None:
    now = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    ref = RunRef(experiment="sas", id="run-expiry")
    access = run_store_access(store, ref, parse_job(SPEC), now=now)
    assert access is not None and set(access.urls) == {"checkpoints/latest.pt", "progress.json"}
    expected = now + timedelta(seconds=600) + SLACK
    assert access.expires == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    for path, url in access.urls.items():
        assert urlsplit(url).path.endswith(f"/runs/sas/run-expiry/job/{path}")
        query = parse_qs(urlsplit(url).query)
        assert query["se"] == [access.expires] and query["sr"] == ["b"] and query["sp"] == ["rcw"]


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(60, timedelta(seconds=60) + SLACK), (None, MAX_LIFETIME), (30 * 24 * 3600, MAX_LIFETIME)],
)
def test_the_lifetime_is_the_timeout_capped(timeout: int | None, expected: timedelta) -> None:
    spec = parse_job("command: x\n" + (f"limits: {{timeout: {timeout}}}\n" if timeout else ""))
    assert lifetime(spec) == expected


def test_a_job_that_names_no_blob_gets_no_url_and_cannot_set_one(store: Store, tmp_path: Path) -> None:
    ref = RunRef(experiment="sas", id="run-none")
    spec = parse_job(
        'command: x\nenvironment_variables: {TRAINSTACK_RUN_SAS_URLS: \'{"a": "https://evil"}\'}\n'
    )
    assert run_store_access(store, ref, spec) is None
    env = _plan_env(spec, tmp_path, store, ref)
    assert V.TRAINSTACK_RUN_SAS_URLS not in env and V.TRAINSTACK_RUN_SAS_EXPIRES not in env


def test_a_dry_run_shows_where_the_urls_go_without_signing_anything() -> None:
    from jobrunner.plan.dryrun import dry_run

    (plan,) = dry_run(parse_job(SPEC), 1)
    urls = json.loads(plan.processes[0].env[V.TRAINSTACK_RUN_SAS_URLS])
    assert set(urls) == {"checkpoints/latest.pt", "progress.json"}
    assert all("signed at launch" in url and "sig=" not in url for url in urls.values())


@pytest.mark.parametrize(
    ("blobs", "words"),
    [
        (["../run-victim/spec.json"], "not allowed"),
        (["/abs.pt"], "not allowed"),
        (["a//b"], "not allowed"),
        ([".hidden"], "not allowed"),
        (["a/./b"], "not allowed"),
        (["x" * 300], "not allowed"),
        (["same", "same"], "named twice"),
        ([f"b{i}" for i in range(33)], "at most 32"),
    ],
)
def test_store_blob_names_stay_under_the_runs_job_folder(blobs: list[str], words: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=words):
        StoreAccess.model_validate({"blobs": blobs})


class _EntraToken:
    """A token of the shape Entra ID issues for Storage, which Azurite's `--oauth basic` reads
    (it checks audience, issuer and times, not the signature): the node identity's sign-in."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        now = int(time.time())
        tenant = "ab1f708d-50f6-404c-a006-d71b2ac7a606"
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
            "oid": "23657296-5cd5-45b0-a809-d972a7f4dfe1", "tid": tenant,
        }  # fmt: skip
        parts = [{"alg": "none", "typ": "JWT"}, claims]
        token = ".".join(
            base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=").decode() for p in parts
        )
        return AccessToken(token + ".unsigned", now + 3600)


@pytest.fixture(scope="module")
def entra_store(loopback_tls: LoopbackTls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A store signed in with a token, as on Azure: an Azurite over https with OAuth on."""
    data = tmp_path_factory.mktemp("azurite-oauth")
    ports = [free_port() for _ in range(3)]
    argv = [
        str(azurite_executable()), "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--loose",
        "--location", str(data), "--oauth", "basic",
        "--cert", str(loopback_tls.cert), "--key", str(loopback_tls.key),
        "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]), "--queueHost", "127.0.0.1",
        "--queuePort", str(ports[1]), "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
    ]  # fmt: skip
    with open(data / "azurite.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    options: dict[str, Any] = {"credential": _EntraToken(), "connection_verify": str(loopback_tls.cert)}
    blobs = BlobServiceClient(f"https://127.0.0.1:{ports[0]}/{ACCOUNT}", **options)
    queues = QueueServiceClient(f"https://127.0.0.1:{ports[1]}/{ACCOUNT}", **options)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                blobs.create_container(RUNS)
                break
            except AzureError:  # not listening yet
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield Store(blobs, queues, description=blobs.url)
    finally:
        proc.kill()
        proc.wait()


def test_signed_in_with_a_token_the_agent_signs_with_a_user_delegation_key(
    entra_store: Store, loopback_tls: LoopbackTls
) -> None:
    mine, victim = RunRef(experiment="sas", id="run-mine"), RunRef(experiment="sas", id="run-victim")
    entra_store.put(RUNS, victim.spec_blob, b"{}")
    access = run_store_access(entra_store, mine, parse_job(SPEC))
    assert access is not None
    url = access.urls["checkpoints/latest.pt"]
    query = parse_qs(urlsplit(url).query)
    assert query["skoid"] == ["23657296-5cd5-45b0-a809-d972a7f4dfe1"]  # signed by the identity's key
    verify: dict[str, Any] = {"connection_verify": str(loopback_tls.cert)}
    BlobClient.from_blob_url(url, **verify).upload_blob(b"step 1", overwrite=True)
    assert BlobClient.from_blob_url(url, **verify).download_blob().readall() == b"step 1"
    other = url.replace(job_blob(mine, "checkpoints/latest.pt"), victim.spec_blob)
    with pytest.raises(HttpResponseError) as refused:
        BlobClient.from_blob_url(other, **verify).download_blob().readall()
    assert refused.value.status_code == 403


def test_an_agent_hands_a_real_job_its_urls(store: Store, tmp_path: Path) -> None:
    """Through a real agent: the job writes its checkpoint with its URL alone."""
    from jobrunner.client import Client
    from jobrunner.node.agent import AgentSettings
    from jobrunner.store.pool_config import PoolConfig, write_pool_config
    from tests.runner.agents import run_to_end

    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text(
        "import json, os\nfrom azure.storage.blob import BlobClient\n"
        "url = json.loads(os.environ['TRAINSTACK_RUN_SAS_URLS'])['checkpoints/latest.pt']\n"
        "BlobClient.from_blob_url(url).upload_blob(b'from the job', overwrite=True)\n"
    )
    job = tmp_path / "job.yml"
    job.write_text(
        "command: python job.py\ncode: code\nexperiment_name: sas\nlimits: {timeout: 600}\n"
        "trainstack:\n  store: {blobs: [checkpoints/latest.pt]}\n"
    )
    write_pool_config(store, PoolConfig(name="sas-pool", max_nodes=1))
    run = Client(store, pool="sas-pool").submit(job)
    run_to_end(store, AgentSettings(pool="sas-pool", name="sas-0", work_dir=tmp_path / "agent"), run.id)
    final = Client(store).status(run.id)
    assert final.state.value == "succeeded", final
    assert store.get(RUNS, job_blob(run.ref, "checkpoints/latest.pt"))[0] == b"from the job"
