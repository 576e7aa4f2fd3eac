"""Store access for a job that needs it: a short-lived SAS URL for each blob of its own run it
named in `trainstack.store.blobs`, and nothing else.

Each blob lives at `runs/<experiment>/<id>/job/<path>`, a folder of the run that the agent
itself never reads. Its URL carries a blob SAS (read, create, write) that expires with the
job: `limits.timeout` plus a few minutes, at most `MAX_LIFETIME`, the same for every attempt
that starts later (each plans its own). On Azure the SAS is a user delegation SAS, signed with
a key the node identity gets from Entra ID (the store's account key may be off); with a
connection string (Azurite) it is signed with the account key. The job never sees either.

Why one SAS per blob and not one for the run's prefix: Blob Storage signs for one container
or one blob; a directory SAS (`sr=d`) exists only on accounts with a hierarchical namespace,
which the job store (the workspace's account) has not and Azurite refuses. A container SAS
for `runs`, even one that may only create, would let a job create blobs in other runs, such as
the `requeued/<attempt>` marker that the agent writes only if absent (so that run would never
be requeued). A blob SAS names its blob in its signature: another name, in this run or
another, is refused, and so is listing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from jobrunner.api import RunStoreAccess
from jobrunner.spec.job import JobSpec
from jobrunner.store.client import RUNS, Store
from jobrunner.store.status import RunRef

JOB_FOLDER = "job/"
MAX_LIFETIME = timedelta(hours=24)
# Past the timeout: the attempt's start-up, and its last upload after the job stops.
SLACK = timedelta(minutes=5)
# A clock a little ahead of the store's must not make a fresh SAS "not yet valid".
CLOCK_SKEW = timedelta(minutes=5)
PERMISSION = BlobSasPermissions(read=True, create=True, write=True)


def job_blob(ref: RunRef, path: str) -> str:
    """The blob name (in `runs`) of the job's own `path`."""
    return ref.blob(JOB_FOLDER + path)


def lifetime(spec: JobSpec) -> timedelta:
    """How long the job's URLs work: its timeout and `SLACK`, at most `MAX_LIFETIME`."""
    if spec.limits.timeout is None:
        return MAX_LIFETIME
    return min(timedelta(seconds=spec.limits.timeout) + SLACK, MAX_LIFETIME)


def run_store_access(
    store: Store, ref: RunRef, spec: JobSpec, *, now: datetime | None = None
) -> RunStoreAccess | None:
    """The SAS URLs for the blobs `spec` names under run `ref` (None when it names none).

    Raises StoreError when the store refuses a user delegation key (the node identity lacks
    Storage Blob Delegator on the account).
    """
    paths = spec.trainstack.store.blobs
    if not paths:
        return None
    now = now or datetime.now(UTC)
    start, expiry = now - CLOCK_SKEW, now + lifetime(spec)
    account, key = store.signing_key(start, expiry)
    signing = {"account_key": key} if isinstance(key, str) else {"user_delegation_key": key}
    urls = {}
    for path in paths:
        name = job_blob(ref, path)
        sas = generate_blob_sas(
            account,
            RUNS,
            name,
            permission=PERMISSION,
            start=start,
            expiry=expiry,
            protocol=_protocol(store),
            **signing,
        )
        urls[path] = f"{store.blob_url(RUNS, name)}?{sas}"
    return RunStoreAccess(urls=urls, expires=expiry.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _protocol(store: Store) -> str:
    # https only on Azure; the local Azurite listens on plain http on loopback.
    return "https" if store.blob_url(RUNS, "x").startswith("https://") else "https,http"
