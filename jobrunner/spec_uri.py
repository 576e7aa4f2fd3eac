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

    Raises ValueError (with the reason and the fix) for registered assets and for URIs a pool
    cannot read.
    """
    if not uri.strip():
        raise ValueError("path is empty")
    m = _DATASTORE.match(uri)
    if m:
        return DataLocation("datastore", path=m["path"], store=m["store"])
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
    if uri.startswith(("https://", "http://")):
        return DataLocation("https", url=uri)
    if re.match(r"^[A-Za-z][\w+.-]*://", uri):
        scheme = uri.split("://", 1)[0]
        raise ValueError(
            f"a pool cannot read `{scheme}://` paths; use azureml://datastores/<name>/paths/<path>, "
            "https://, wasbs://, abfss:// or a local path"
        )
    return DataLocation("local", path=uri.removeprefix("file:"))
