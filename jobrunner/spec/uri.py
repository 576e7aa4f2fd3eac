"""Where a job's data lives, parsed from the `path` of an input or output.

A pool can stage data from a datastore (`azureml://datastores/<name>/paths/<path>`), a
local path (relative to the job file; `file:` allowed), an https URL, or a blob on a storage
account (`wasbs://<container>@<account>.blob.core.windows.net/<path>`,
`abfss://<filesystem>@<account>.dfs.core.windows.net/<path>`). It cannot resolve Azure ML's
registered assets (`azureml:<name>@latest`, `azureml:<name>:<version>`, `azureml://registries/...`,
`azureml://subscriptions/...`, an Azure resource ID `/subscriptions/.../data/<name>/versions/<v>`):
those exist only inside a workspace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# The runner's own containers (`jobrunner.store.client.RUNS`, `POOLS`): never a datastore, so no job
# can read or rewrite another run's spec, status or outputs, or a pool's scheduler blobs.
RESERVED_DATASTORES = frozenset({"runs", "pools"})
_DATASTORE = re.compile(r"^azureml://datastores/(?P<store>[^/]+)/paths/(?P<path>.*)$")
# An Azure resource ID (`/subscriptions/<id>/resourceGroups/...`): a workspace's data asset.
_RESOURCE_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/", re.IGNORECASE)
_STORAGE = re.compile(
    r"^(?P<scheme>wasbs?|abfss?)://(?P<container>[^@/]+)@(?P<account>[^./]+)\.(?:blob|dfs)\.core\.windows\.net/?(?P<path>.*)$"
)


@dataclass(frozen=True)
class DataLocation:
    """`kind` says how to fetch it; `store`/`path` (datastore), `account`/`container`/`path`
    (blob), `path` (local, possibly relative) or `url` (https)."""

    kind: Literal["datastore", "local", "https", "blob"]
    path: str = ""
    store: str | None = None
    account: str | None = None
    container: str | None = None
    url: str | None = None


def parse_data_uri(uri: str) -> DataLocation:
    """Classify a data path.

    Raises ValueError (with the reason and the fix) for registered assets, for URIs a pool
    cannot read, for plain http, for the runner's own containers (`runs`, `pools`) as datastores
    and for datastore paths with `..`, `.` or empty segments.
    """
    if not uri.strip():
        raise ValueError("path is empty")
    m = _DATASTORE.match(uri)
    if m:
        return DataLocation("datastore", path=_clean_path(uri, m["path"]), store=_datastore(m["store"]))
    if uri.startswith("azureml:") or _RESOURCE_ID.match(uri):
        raise ValueError(
            f"`{uri}` is a registered Azure ML asset: give a datastore URI "
            "(azureml://datastores/<name>/paths/<path>) or a local path"
        )
    m = _STORAGE.match(uri)
    if m:
        return DataLocation("blob", path=m["path"], account=m["account"], container=m["container"])
    if re.match(r"^(wasbs?|abfss?)://", uri):
        raise ValueError(
            f"`{uri}` is not a storage URI a pool can read; "
            "write <scheme>://<container>@<account>.blob.core.windows.net/<path>"
        )
    if uri.startswith("https://"):
        return DataLocation("https", url=uri)
    if uri.startswith("http://"):
        raise ValueError(
            f"`{uri}`: plain http is not accepted (anyone on the way can change it); use https://"
        )
    if re.match(r"^[A-Za-z][\w+.-]*://", uri):
        scheme = uri.split("://", 1)[0]
        raise ValueError(
            f"a pool cannot read `{scheme}://` paths; use azureml://datastores/<name>/paths/<path>, "
            "https://, wasbs://, abfss:// or a local path"
        )
    return DataLocation("local", path=uri.removeprefix("file:"))


def _datastore(name: str) -> str:
    if name.lower().replace("_", "-") in RESERVED_DATASTORES:
        raise ValueError(
            f"datastore `{name}` is the runner's own container, which a job cannot name: "
            "its runs and pools are not data; use one of the pool's datastores"
        )
    return name


def _clean_path(uri: str, path: str) -> str:
    """A datastore path without `..`, `.` or empty segments (one trailing `/` marks a folder)."""
    inner = path[:-1] if path.endswith("/") else path
    if inner and any(part in ("", ".", "..") for part in inner.split("/")):
        raise ValueError(
            f"`{uri}`: a datastore path may not hold `..`, `.` or empty segments (`//`); "
            "name the folder from the datastore's root"
        )
    return path
