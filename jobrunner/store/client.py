"""The job store: Azure Blob + Queue storage through the official SDKs, with retries.

Layout (see DESIGN.md): a queue per pool (`pool-<name>`), the blob container `runs`
(`runs/<experiment>/<id>/{spec.json,status.json,code.tar.gz,logs/...,outputs/...}`), the
container `pools` (pool config, the pool scheduler's blobs) and one container per datastore
(`workspaceblobstore` by default, as in Azure ML).

Which store: `JOBRUNNER_STORE` holds a connection string (Azurite, or an account key) or an
account URL (`https://<account>.blob.core.windows.net`, signed in with
DefaultAzureCredential). Unset, the commands start or reuse the local Azurite of this
checkout (`jobrunner.local.azurite.ensure_local_azurite`, state under `JOBRUNNER_HOME`, by default
`<project>/.trainstack`).

Every call retries transient failures (connection refused, timeouts, 408/429/5xx) with
exponential backoff and raises `StoreError` when it finally gives up; a missing blob or queue
is `NotFoundError`, a lost ETag race is `ConflictError`. Containers and queues are created on
first use, so a fresh account needs no set-up step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobBlock, BlobServiceClient, BlobType, UserDelegationKey
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueMessage,
    QueueServiceClient,
)
from requests.utils import get_environ_proxies

from jobrunner.errors import ConflictError, NotFoundError, StoreError
from jobrunner.local.azurite import ensure_local_azurite, project_root
from jobrunner.node.isolation import redact_store, without_query

T = TypeVar("T")

STORE_ENV = "JOBRUNNER_STORE"
HOME_ENV = "JOBRUNNER_HOME"
RUNS = "runs"
POOLS = "pools"
DEFAULT_DATASTORE = "workspaceblobstore"
MAX_APPEND_BLOCK = 4 * 1024 * 1024  # Azure's limit for one append block
# Connections per large blob (the SDK splits only blobs above 64 MiB up / 32 MiB down): a
# 1 GiB output went up at 0.7x the SDK's own 8-connection upload with one.
BLOB_CONNECTIONS = 8
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}

log = logging.getLogger(__name__)


def home_dir() -> Path:
    """Where local state lives (local Azurite, local pool): `JOBRUNNER_HOME` or `.trainstack`."""
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else project_root() / ".trainstack"


def queue_name(pool: str) -> str:
    """The queue of a pool (queue names: lowercase letters, digits and dashes)."""
    return f"pool-{pool.lower()}"


@dataclass(frozen=True)
class Retry:
    """How hard a store call tries: `attempts` tries, backoff doubling from `base_s` to `max_s`."""

    attempts: int = 8
    base_s: float = 0.2
    max_s: float = 5.0

    def delays(self) -> Iterator[float]:
        for n in range(self.attempts - 1):
            # jitter, so that agents that lost the store together do not retry in lockstep
            yield min(self.max_s, self.base_s * 2**n) * random.uniform(0.7, 1.0)


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    last_modified: datetime
    etag: str


def environment_proxies(url: str) -> dict[str, str] | None:
    """The proxies `HTTP_PROXY`/`HTTPS_PROXY` name for `url`, unless `NO_PROXY` exempts its host:
    what the SDK's transport would work out on every request, worked out once."""
    return get_environ_proxies(url, no_proxy=None) or None


def _transient(exc: AzureError) -> bool:
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in _TRANSIENT_STATUS


def _missing_parent(exc: ResourceNotFoundError) -> bool:
    return getattr(exc, "error_code", None) in ("ContainerNotFound", "QueueNotFound")


class Store:
    """Blob and queue calls of one storage account. Thread-safe (the SDK clients are)."""

    def __init__(
        self,
        blobs: BlobServiceClient,
        queues: QueueServiceClient,
        *,
        description: str,
        retry: Retry | None = None,
    ) -> None:
        self._blobs = blobs
        self._queues = queues
        self.description = description
        self.retry = retry or Retry()
        # when a call last failed for a reason worth retrying (or this client was made): the
        # store's answers about silence (old heartbeats) mean something only well after that
        self._trouble_at = time.monotonic()

    def steady_s(self) -> float:
        """Seconds since a call of this client last met store trouble (or since it was made).

        Retries hide an outage from callers: a call that waited one out still succeeds, and
        then every heartbeat it reads is old. Judge silence only when this is long enough.
        """
        return time.monotonic() - self._trouble_at

    # ----------------------------------------------------------------- connecting
    @classmethod
    def connect(cls, target: str, *, retry: Retry | None = None) -> Store:
        """A store from a connection string or a blob account URL (see the module docstring)."""
        # The SDK's own retries are off: `_call` retries, with one policy and one error type.
        # The environment's proxy settings are read here, once per service (its host is fixed),
        # instead of by the transport on every request (the whole environment and ~/.netrc).
        options: dict[str, Any] = {
            "retry_total": 0,
            "connection_timeout": 5,
            "read_timeout": 60,
            "use_env_settings": False,
        }
        try:
            if "=" in target and ";" in target:
                blobs = BlobServiceClient.from_connection_string(target, **options)
                if proxies := environment_proxies(blobs.url):
                    blobs = BlobServiceClient.from_connection_string(target, proxies=proxies, **options)
                queues = QueueServiceClient.from_connection_string(target, **options)
                if proxies := environment_proxies(queues.url):
                    queues = QueueServiceClient.from_connection_string(target, proxies=proxies, **options)
                description = blobs.url
            elif target.startswith("https://") and ".blob." in target:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
                queue_url = target.replace(".blob.", ".queue.")
                blobs = BlobServiceClient(
                    target, credential=credential, proxies=environment_proxies(target), **options
                )
                queues = QueueServiceClient(
                    queue_url, credential=credential, proxies=environment_proxies(queue_url), **options
                )
                description = target
            else:
                raise StoreError(
                    f"{STORE_ENV}={redact_store(target)[:60]!r} is neither a connection string "
                    "nor a blob account URL",
                    fix="set it to `https://<account>.blob.core.windows.net` or a connection string",
                )
        except ValueError as exc:
            raise StoreError(
                f"{STORE_ENV} cannot be used: {exc}", fix="check the connection string"
            ) from None
        # A SAS travels in the URL's query: it stays out of every message that names the store.
        log.debug(
            "job store %s (%s)",
            without_query(description),
            "account key or SAS" if "=" in target else "sign-in",
        )
        return cls(blobs, queues, description=without_query(description), retry=retry)

    @classmethod
    def from_env(cls, *, start_local: bool = True, retry: Retry | None = None) -> Store:
        """The store `JOBRUNNER_STORE` names, else the local Azurite (started when needed)."""
        target = os.environ.get(STORE_ENV)
        if not target:
            if not start_local:
                raise StoreError("no job store configured", fix=f"set {STORE_ENV}")
            target = ensure_local_azurite(home_dir()).connection_string
        return cls.connect(target, retry=retry)

    # ------------------------------------------------------------------- retries
    def _call(self, what: str, fn: Callable[[], T], *, create: Callable[[], None] | None = None) -> T:
        """Run `fn` with retries; `create` makes a missing container/queue, then `fn` runs again."""
        delays = self.retry.delays()
        tries = 0
        while True:
            tries += 1
            try:
                return fn()
            except ResourceNotFoundError as exc:
                if create is not None and _missing_parent(exc):
                    log.debug("%s: its container or queue is missing; creating it", what)
                    create()
                    create = None
                    continue
                raise NotFoundError(f"{what}: not found in the job store ({self.description})") from None
            except (ResourceModifiedError, ResourceExistsError) as exc:
                raise ConflictError(f"{what}: changed by someone else ({exc.reason})") from None
            except AzureError as exc:
                if isinstance(exc, HttpResponseError) and exc.status_code == 412:
                    raise ConflictError(f"{what}: changed by someone else") from None
                if _transient(exc):
                    self._trouble_at = time.monotonic()
                delay = next(delays, None) if _transient(exc) else None
                # the SDK's messages may quote a request URL: its query (a SAS) never goes further
                detail = without_query(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
                if delay is None:
                    log.debug("%s failed after %d tries: %s", what, tries, detail)
                    raise StoreError(
                        f"{what}: the job store ({self.description}) failed: {detail}",
                        fix="check that the store is reachable and JOBRUNNER_STORE is right",
                    ) from None
                log.debug("%s, try %d: %s; again in %.2f s", what, tries, detail, delay)
                time.sleep(delay)

    def _ensure_container(self, container: str) -> Callable[[], None]:
        def create() -> None:
            with contextlib.suppress(ResourceExistsError):
                self._blobs.create_container(container)

        return lambda: self._call(f"create container {container}", create)

    def _ensure_queue(self, queue: str) -> Callable[[], None]:
        def create() -> None:
            with contextlib.suppress(ResourceExistsError):
                self._queues.create_queue(queue)

        return lambda: self._call(f"create queue {queue}", create)

    # ----------------------------------------------------------------- signing
    def signing_key(self, start: datetime, expiry: datetime) -> tuple[str, str | UserDelegationKey]:
        """What a SAS for this store is signed with: (account name, account key) where the
        store has the key (a connection string, Azurite), else a user delegation key of the
        store's identity valid from `start` to `expiry` (Entra ID: the identity needs the
        account-level `generateUserDelegationKey` action, Storage Blob Delegator). Raises
        StoreError when Azure refuses the key."""
        credential = self._blobs.credential
        account = str(self._blobs.account_name)
        key = getattr(credential, "account_key", None)
        if isinstance(key, str):
            return account, key
        delegation = self._call(
            "get a user delegation key", lambda: self._blobs.get_user_delegation_key(start, expiry)
        )
        return account, delegation

    def blob_url(self, container: str, name: str) -> str:
        """The blob's URL, without any credential."""
        return str(self._blobs.get_blob_client(container, name).url)

    # --------------------------------------------------------------------- blobs
    def put(
        self,
        container: str,
        name: str,
        data: bytes | IO[bytes],
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        """Write a block blob; returns its new ETag.

        `if_match`: only if the blob still has this ETag; `if_absent`: only if it does not
        exist. Either losing raises ConflictError.
        """
        blob = self._blobs.get_blob_client(container, name)
        kwargs: dict[str, Any] = {"overwrite": True}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        elif if_absent:
            kwargs.update(match_condition=MatchConditions.IfMissing)

        def go() -> str:
            if not isinstance(data, bytes):
                data.seek(0)
            return str(blob.upload_blob(data, **kwargs)["etag"])

        return self._call(f"write {container}/{name}", go, create=self._ensure_container(container))

    def get(self, container: str, name: str, *, offset: int = 0) -> tuple[bytes, str]:
        """A blob's bytes (from `offset`) and its ETag. NotFoundError when it does not exist."""
        blob = self._blobs.get_blob_client(container, name)

        def go() -> tuple[bytes, str]:
            stream = blob.download_blob(offset=offset or None)
            return stream.readall(), str(stream.properties.etag)

        return self._call(f"read {container}/{name}", go)

    def size(self, container: str, name: str) -> int:
        """A blob's size in bytes. NotFoundError when it does not exist."""
        blob = self._blobs.get_blob_client(container, name)
        return self._call(f"read {container}/{name}", lambda: int(blob.get_blob_properties().size))

    def list(self, container: str, prefix: str = "") -> list[BlobInfo]:
        """The blobs whose names start with `prefix` (none when the container does not exist)."""
        client = self._blobs.get_container_client(container)

        def go() -> list[BlobInfo]:
            return [
                BlobInfo(b.name, int(b.size), b.last_modified, str(b.etag))
                for b in client.list_blobs(name_starts_with=prefix or None)
            ]

        try:
            return self._call(f"list {container}/{prefix}", go)
        except NotFoundError:
            return []

    def delete(self, container: str, name: str) -> None:
        """Delete a blob; a missing one is not an error."""
        blob = self._blobs.get_blob_client(container, name)
        with contextlib.suppress(NotFoundError):
            self._call(f"delete {container}/{name}", lambda: blob.delete_blob())

    def upload_file(
        self,
        container: str,
        name: str,
        path: Path,
        *,
        progress: Callable[[int], None] | None = None,
        follow_links: bool = True,
    ) -> None:
        """Upload a local file as a block blob; `progress(bytes_so_far)` while it goes.
        `follow_links=False` (a job's outputs): a link is refused with OSError (ELOOP)."""
        blob = self._blobs.get_blob_client(container, name)
        hook = (lambda current, _total: progress(current)) if progress else None

        def go() -> None:
            fd = os.open(path, os.O_RDONLY | (0 if follow_links else os.O_NOFOLLOW))
            with os.fdopen(fd, "rb") as f:
                blob.upload_blob(f, overwrite=True, progress_hook=hook, max_concurrency=BLOB_CONNECTIONS)

        self._call(f"upload {path} to {container}/{name}", go, create=self._ensure_container(container))

    def stage_block(self, container: str, name: str, block_id: str, data: bytes) -> None:
        """Upload one block of a block blob, not yet part of it (`commit_blocks` makes it so).
        Block ids of one blob must all have the same length."""
        blob = self._blobs.get_blob_client(container, name)
        self._call(
            f"upload a block of {container}/{name}",
            lambda: blob.stage_block(block_id, data, length=len(data)),
            create=self._ensure_container(container),
        )

    def commit_blocks(self, container: str, name: str, block_ids: Sequence[str]) -> None:
        """Make the blob these blocks, in this order: staged ones and ones it already holds."""
        blob = self._blobs.get_blob_client(container, name)
        blocks = [BlobBlock(block_id=b) for b in block_ids]  # latest: staged, else committed
        self._call(f"commit {container}/{name}", lambda: blob.commit_block_list(blocks))

    def download_file(
        self, container: str, name: str, path: Path, *, progress: Callable[[int], None] | None = None
    ) -> None:
        """Download a blob to a local file (parent folders are made)."""
        blob = self._blobs.get_blob_client(container, name)
        path.parent.mkdir(parents=True, exist_ok=True)

        def go() -> None:
            hook = (lambda current, _total: progress(current)) if progress else None
            stream = blob.download_blob(progress_hook=hook, max_concurrency=BLOB_CONNECTIONS)
            with open(path, "wb") as f:
                stream.readinto(f)

        self._call(f"download {container}/{name}", go)

    def append(self, container: str, name: str, data: bytes, *, at: int | None = None) -> None:
        """Append `data` to an append blob, creating it first when needed.

        Callers keep `data` within MAX_APPEND_BLOCK per call; longer data is split here.
        `at`: the blob's length the caller expects before this append (Azure's `appendpos`
        condition). A retry whose earlier try landed but whose answer was lost (a timeout, a
        reset connection) then finds the data already there and sends it no second time;
        ConflictError when the blob has some other length (another writer). With `at=0` the blob
        is created first, so that no data is sent to a blob that is not there yet.
        """
        blob = self._blobs.get_blob_client(container, name)

        def create_blob() -> None:
            try:
                blob.create_append_blob(if_none_match="*")
            except (ResourceExistsError, ResourceModifiedError):
                pass
            except ResourceNotFoundError:
                self._ensure_container(container)()
                blob.create_append_blob()

        def send(chunk: bytes, pos: int | None) -> None:
            kwargs: dict[str, Any] = {} if pos is None else {"appendpos_condition": pos}
            try:
                blob.append_block(chunk, **kwargs)
            except HttpResponseError as exc:
                if pos is None or exc.status_code != 412:
                    raise
                if int(blob.get_blob_properties().size) != pos + len(chunk):
                    raise
                if blob.download_blob(offset=pos, length=len(chunk)).readall() != chunk:
                    raise
                # an earlier try of this very append landed; only its answer was lost

        if at == 0:
            # a first append: create the blob before sending the data, else the data goes
            # twice (once to hear that the blob is missing)
            self._call(f"create {container}/{name}", create_blob)
        for start in range(0, len(data), MAX_APPEND_BLOCK):
            chunk = data[start : start + MAX_APPEND_BLOCK]
            pos = None if at is None else at + start

            def go(chunk: bytes = chunk, pos: int | None = pos) -> None:
                try:
                    send(chunk, pos)
                except ResourceNotFoundError:
                    create_blob()
                    send(chunk, pos)

            self._call(f"append to {container}/{name}", go)

    def blob_type(self, container: str, name: str) -> BlobType:
        blob = self._blobs.get_blob_client(container, name)
        return self._call(f"read {container}/{name}", lambda: blob.get_blob_properties().blob_type)

    # -------------------------------------------------------------------- queues
    def _queue(self, queue: str) -> Any:
        return self._queues.get_queue_client(
            queue,
            message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )

    def send(self, queue: str, text: str, *, delay_s: int = 0) -> None:
        """Put a message on a queue (base64, as Azure Functions and the portal expect)."""
        client = self._queue(queue)
        self._call(
            f"send to queue {queue}",
            lambda: client.send_message(text.encode(), visibility_timeout=delay_s or None, time_to_live=-1),
            create=self._ensure_queue(queue),
        )

    def receive(self, queue: str, *, visibility_timeout_s: int) -> QueueMessage | None:
        """Take the next message, hidden from others for `visibility_timeout_s`; None if empty."""
        client = self._queue(queue)

        def go() -> QueueMessage | None:
            return client.receive_message(visibility_timeout=visibility_timeout_s)  # type: ignore[no-any-return]

        try:
            return self._call(f"receive from queue {queue}", go)
        except NotFoundError:
            return None  # nobody has submitted to this pool yet

    def renew(self, queue: str, message: QueueMessage, *, visibility_timeout_s: int) -> QueueMessage:
        """Keep holding a message for another `visibility_timeout_s`; returns it with its new receipt.

        NotFoundError when the message is gone (deleted, or its receipt expired and someone
        else took it).
        """
        client = self._queue(queue)

        def go() -> QueueMessage:
            updated = client.update_message(
                message.id, pop_receipt=message.pop_receipt, visibility_timeout=visibility_timeout_s
            )
            message.pop_receipt = updated.pop_receipt
            message.next_visible_on = updated.next_visible_on
            return message

        try:
            return self._call(f"renew message on queue {queue}", go)
        except ConflictError:
            raise NotFoundError(f"renew message on queue {queue}: taken by someone else") from None

    def delete_message(self, queue: str, message: QueueMessage) -> None:
        """Remove a held message for good; a message already gone is not an error."""
        client = self._queue(queue)
        with contextlib.suppress(NotFoundError):
            self._call(
                f"delete message from queue {queue}",
                lambda: client.delete_message(message.id, message.pop_receipt),
            )

    def clear_queue(self, queue: str) -> None:
        """Remove every message of a queue in one request; a queue never used is not an error."""
        client = self._queue(queue)
        with contextlib.suppress(NotFoundError):
            self._call(f"clear queue {queue}", client.clear_messages)

    def queue_length(self, queue: str) -> int:
        """Approximate number of messages (visible or held); 0 for a queue never used."""
        client = self._queue(queue)

        def go() -> int:
            return int(client.get_queue_properties().approximate_message_count or 0)

        try:
            return self._call(f"read queue {queue}", go)
        except NotFoundError:
            return 0
