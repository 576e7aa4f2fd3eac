"""The pool protocol's store calls (`jobrunner.scheduler.protocol.PoolStore`) on Azure Storage.

    pool_store = AzurePoolStore(Store.from_env(), pool="a100-spot")

Blobs live under `pools/<pool>/sched/` (the lease blob, node blobs, pending blobs, run
documents); submissions arrive on the pool's queue (`jobrunner.store.client.queue_name`).
Every call goes through `jobrunner.store.client.Store`'s retries. Times are the store's: a
listing's `at` is its response's `Date` header, a blob's heartbeat its `Last-Modified`, a
submission's order its queue insertion time.

Failure modes: StoreError when the store gives up; ConflictError when an ETag, if-absent or
lease condition fails; NotFoundError for a missing blob.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import uuid
from email.utils import parsedate_to_datetime
from typing import Any

from azure.core import MatchConditions
from azure.storage.blob import BlobLeaseClient

from jobrunner.errors import ConflictError, NotFoundError
from jobrunner.scheduler.protocol import BlobEntry, Listing, Submission
from jobrunner.store.client import POOLS, Store, queue_name

VISIBILITY_S = 60  # a taken submission comes back this long after a leader that died with it


class AzurePoolStore:
    """`PoolStore` over one pool's blobs and submission queue."""

    def __init__(self, store: Store, pool: str) -> None:
        self.store = store
        self.base = f"{pool}/sched/"
        self.queue = queue_name(pool)
        self._container = store._blobs.get_container_client(POOLS)  # noqa: SLF001

    def _blob(self, name: str) -> Any:
        return self._container.get_blob_client(self.base + name)

    def list(self, prefix: str) -> Listing:
        answered: list[str] = []

        def go() -> tuple[BlobEntry, ...]:
            pages = self._container.list_blobs(
                name_starts_with=self.base + prefix, include=["metadata"],
                raw_response_hook=lambda r: answered.append(r.http_response.headers.get("Date", "")),
            )  # fmt: skip
            return tuple(
                BlobEntry(
                    b.name.removeprefix(self.base),
                    str(b.etag),
                    b.last_modified.timestamp(),
                    dict(b.metadata or {}),
                )  # fmt: skip
                for b in pages
            )

        try:
            entries = self.store._call(f"list {POOLS}/{self.base}{prefix}", go)  # noqa: SLF001
        except NotFoundError:
            entries = ()
        return Listing(parsedate_to_datetime(answered[-1]).timestamp() if answered else 0.0, entries)

    def get(self, name: str) -> tuple[bytes, str, dict[str, str]]:
        blob = self._blob(name)

        def go() -> tuple[bytes, str, dict[str, str]]:
            stream = blob.download_blob()
            return stream.readall(), str(stream.properties.etag), dict(stream.properties.metadata or {})

        return self.store._call(f"read {POOLS}/{self.base}{name}", go)  # noqa: SLF001

    def put(
        self, name: str, data: bytes, metadata: dict[str, str], *, if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:  # fmt: skip
        blob = self._blob(name)
        kwargs: dict[str, Any] = {"overwrite": True, "metadata": metadata}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        elif if_absent:
            kwargs.update(match_condition=MatchConditions.IfMissing)
        return self.store._call(  # noqa: SLF001
            f"write {POOLS}/{self.base}{name}", lambda: str(blob.upload_blob(data, **kwargs)["etag"]),
            create=self.store._ensure_container(POOLS),  # noqa: SLF001
        )  # fmt: skip

    def delete(self, name: str, *, if_match: str | None = None) -> None:
        blob = self._blob(name)
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        self.store._call(f"delete {POOLS}/{self.base}{name}", lambda: blob.delete_blob(**kwargs))  # noqa: SLF001

    def acquire_lease(self, name: str, duration_s: int, lease_id: str) -> bool:
        """Take the lease with our own id (a retry after a lost answer gets it back); False
        while another holds it."""
        lease = BlobLeaseClient(self._blob(name), lease_id=_lease_guid(lease_id))
        for _ in range(2):
            try:
                what = f"acquire the lease on {self.base}{name}"
                self.store._call(what, lambda: lease.acquire(lease_duration=duration_s))  # noqa: SLF001
                return True
            except ConflictError:
                return False
            except NotFoundError:  # a new pool: the lease blob is made once, by whoever comes first
                with contextlib.suppress(ConflictError):
                    self.put(name, b"", {}, if_absent=True)
        return False

    def renew_lease(self, name: str, lease_id: str) -> None:
        lease = BlobLeaseClient(self._blob(name), lease_id=_lease_guid(lease_id))
        self.store._call(f"renew the lease on {self.base}{name}", lease.renew)  # noqa: SLF001

    def send(self, body: dict[str, object]) -> None:
        self.store.send(self.queue, json.dumps(body))

    def receive(self, max_messages: int) -> builtins.list[Submission]:
        client = self.store._queue(self.queue)  # noqa: SLF001

        def go() -> builtins.list[Submission]:
            pages = client.receive_messages(messages_per_page=max_messages, visibility_timeout=VISIBILITY_S)
            out = []
            for message in next(pages.by_page(), []):
                text = bytes(message.content).decode("utf-8", errors="replace")
                try:
                    body: object = json.loads(text)
                except ValueError:
                    body = text  # not one of ours: the leader sets it aside with the reason
                out.append(Submission(message.id, message.pop_receipt, body, message.inserted_on.timestamp()))
            return out

        try:
            return self.store._call(f"receive from queue {self.queue}", go)  # noqa: SLF001
        except NotFoundError:
            return []

    def delete_message(self, submission: Submission) -> None:
        client = self.store._queue(self.queue)  # noqa: SLF001
        self.store._call(  # noqa: SLF001
            f"delete a message of {self.queue}",
            lambda: client.delete_message(submission.message_id, submission.receipt),
        )


def _lease_guid(lease_id: str) -> str:
    """Azure lease ids are GUIDs: the same holder name always gives the same one."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"trainstack-leader:{lease_id}"))
