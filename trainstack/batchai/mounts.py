"""Batch AI mount volumes as datastores, and the paths under them as datastore URIs.

Batch AI mounted file shares, blob containers, file servers and other file systems under
`$AZ_BATCHAI_MOUNT_ROOT/<relativeMountPath>` (cluster) or `$AZ_BATCHAI_JOB_MOUNT_ROOT/...`
(job). trainstack names data by datastore instead: each mounted share or container becomes a
`trainstack:datastores` entry, and a path under a mount becomes
`azureml://datastores/<name>/paths/<rest>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from trainstack.batchai.fates import Ledger, placeholders_in
from trainstack.batchai.models import AzureStorageCredentialsInfo, MountVolumes

JOB_ROOT: Final = "AZ_BATCHAI_JOB_MOUNT_ROOT"
# Stands where Pulumi's ciphertext goes, so the entry has a secret's shape (`{secure: ...}`).
ACCOUNT_KEY = "<STORAGE_ACCOUNT_KEY>"
CLUSTER_ROOT: Final = "AZ_BATCHAI_MOUNT_ROOT"
Root = Literal["AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_MOUNT_ROOT"]


@dataclass(frozen=True)
class Mount:
    """One mounted volume: where it was (`root`/`relative`), which datastore it is now."""

    root: Root
    relative: str
    datastore: str | None  # None: an unmanaged file system, which has no datastore
    subpath: str = ""  # a file server's sourceDirectory
    field: str = ""  # the input field it came from
    guessed: bool = False  # a mount of a cluster whose file was not given: its datastore is a guess


def datastore_name(text: str) -> str:
    """A datastore name (letters, digits, underscores; Azure ML's rule) made from a mount path."""
    name = re.sub(r"[^a-z0-9_]", "_", text.strip("/").lower()).strip("_") or "data"
    return name if name[0].isalpha() else f"ds_{name}"


def share_name(text: str) -> str:
    """A file share or container name (3-63 of a-z, 0-9 and single `-`) made from a name."""
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")
    return (name or "data").ljust(3, "0")[:63].strip("-")


class MountTable:
    """The mounts a conversion knows, and the datastores they became (for stack.yaml)."""

    def __init__(self) -> None:
        self.mounts: list[Mount] = []
        self.datastores: list[dict[str, Any]] = []
        self.sources: dict[str, str] = {}  # datastore name -> the Batch AI storage account

    def _add_datastore(self, entry: dict[str, Any]) -> str:
        """Add a datastore (one per account and container) and return its name. Datastores
        live in the stack's workspace storage account, so the source `account` is kept
        only in `sources` (name -> account), for the copy step the report describes."""
        account = entry.pop("account")
        if entry["auth"] == "accountKey":
            entry["accountKey"] = {"secure": ACCOUNT_KEY}
        for existing in self.datastores:
            same = existing["kind"] == entry["kind"] and existing["container"] == entry["container"]
            if same and self.sources.get(existing["name"]) == account:
                return str(existing["name"])
        name, n = str(entry["name"]), 2
        while any(d["name"] == name for d in self.datastores):
            name, n = f"{entry['name']}_{n}", n + 1
        self.datastores.append({**entry, "name": name})
        self.sources[name] = account
        return name

    def add_volumes(
        self, volumes: MountVolumes, root: Root, base: str, ledger: Ledger, *, pool: bool
    ) -> None:
        """Record every volume of a `mountVolumes` block found at input path `base`."""
        for i, share in enumerate(volumes.azure_file_shares):
            path = f"{base}.azureFileShares[{i}]"
            # Not urlparse(...).hostname: it lowercases `<AZURE_BATCHAI_STORAGE_ACCOUNT>`.
            host, _, container = re.sub(r"^\w+://", "", share.azure_file_url).partition("/")
            account = share.account_name or host.split(".")[0]
            container = container.strip("/")
            name = self._add_datastore(
                {
                    "name": datastore_name(share.relative_mount_path),
                    "kind": "fileshare",
                    "account": account,
                    "container": container,
                    "auth": _auth(share.credentials, f"{path}.credentials", ledger),
                }
            )
            self.mounts.append(Mount(root, share.relative_mount_path, name, field=path))
            ledger.approximated(
                f"{path}.azureFileUrl",
                f"stack.yaml: datastore `{name}` (share `{container}`)",
                _copy_note(account, container),
            )
            ledger.mapped(f"{path}.relativeMountPath", f"job.yml: paths under it use datastore `{name}`")
            if share.account_name:
                ledger.approximated(
                    f"{path}.accountName", f"stack.yaml: datastore `{name}`", _copy_note(account, container)
                )
            for mode in ("fileMode", "directoryMode"):
                if getattr(share, "file_mode" if mode == "fileMode" else "directory_mode"):
                    ledger.unsupported(
                        f"{path}.{mode}",
                        "datastores are staged with the node's default "
                        "permissions; chmod in the job preparation if a mode matters",
                    )
            self._note_placeholders(share.azure_file_url, name, ledger)
        for i, blob in enumerate(volumes.azure_blob_file_systems):
            path = f"{base}.azureBlobFileSystems[{i}]"
            name = self._add_datastore(
                {
                    "name": datastore_name(blob.relative_mount_path),
                    "kind": "blob",
                    "account": blob.account_name,
                    "container": blob.container_name,
                    "auth": _auth(blob.credentials, f"{path}.credentials", ledger),
                }
            )
            self.mounts.append(Mount(root, blob.relative_mount_path, name, field=path))
            ledger.approximated(
                f"{path}.accountName",
                f"stack.yaml: datastore `{name}`",
                _copy_note(blob.account_name, blob.container_name),
            )
            ledger.mapped(f"{path}.containerName", f"stack.yaml: datastore `{name}` container")
            ledger.mapped(f"{path}.relativeMountPath", f"job.yml: paths under it use datastore `{name}`")
            if blob.mount_options:
                ledger.unsupported(
                    f"{path}.mountOptions",
                    "blobfuse options do not carry over: the pool "
                    "mounts with blobfuse2 defaults and Azure ML with its own",
                )
            self._note_placeholders(blob.account_name, name, ledger)
        for i, ref in enumerate(volumes.file_servers):
            path = f"{base}.fileServers[{i}]"
            server = ref.file_server.id.rstrip("/").split("/")[-1]
            name = self._add_datastore(
                {
                    "name": datastore_name(server),
                    "kind": "fileshare",
                    "account": "<FILE_SERVER_HOST>",
                    "container": share_name(server),
                    "auth": "identity",
                }
            )
            self.mounts.append(Mount(root, ref.relative_mount_path, name, ref.source_directory or "", path))
            ledger.approximated(
                f"{path}.fileServer.id",
                f"stack.yaml: datastore `{name}`",
                "Batch AI file servers (an NFS VM) become an Azure Files share; convert the "
                "file server file with --fileserver and copy its data over",
            )
            ledger.mapped(f"{path}.relativeMountPath", f"job.yml: paths under it use datastore `{name}`")
            if ref.source_directory:
                ledger.mapped(f"{path}.sourceDirectory", f"job.yml: path prefix in datastore `{name}`")
            if ref.mount_options:
                ledger.unsupported(
                    f"{path}.mountOptions", "NFS mount options do not carry over to a datastore"
                )
            ledger.placeholder(
                "<FILE_SERVER_HOST>",
                f"MIGRATION.md: the copy into datastore `{name}`",
                "the file server's address, to copy its data into the share",
            )
        for i, fs in enumerate(volumes.unmanaged_file_systems):
            path = f"{base}.unmanagedFileSystems[{i}]"
            self.mounts.append(Mount(root, fs.relative_mount_path, None, field=path))
            if pool:
                ledger.approximated(
                    f"{path}.mountCommand",
                    "pool: mounted by a shell command",
                    "the pool runs the mount command itself (as root), as Batch AI did",
                )
                ledger.mapped(f"{path}.relativeMountPath", f"mount point under ${root}")
            else:
                ledger.unsupported(
                    f"{path}.mountCommand",
                    "Azure ML compute cannot run mount commands; "
                    "use --target pool, or move the data to a datastore",
                )
                ledger.unsupported(
                    f"{path}.relativeMountPath", "the file system is not mounted (see mountCommand)"
                )

    def _note_placeholders(self, value: str, name: str, ledger: Ledger) -> None:
        for ph in placeholders_in(value):
            ledger.placeholder(
                ph,
                f"stack.yaml: datastore `{name}` account",
                "the storage account the Batch AI files referred to",
            )

    def add_guessed(self, root: Root, relative: str, ledger: Ledger) -> Mount:
        """A mount that a path names but no given file declares (a cluster mount when the
        cluster's file was not converted): an Azure Files share named after it, the most
        common Batch AI cluster mount (`az batchai cluster create --afs-name`)."""
        account = "<CLUSTER_STORAGE_ACCOUNT>"
        name = self._add_datastore(
            {
                "name": datastore_name(relative),
                "kind": "fileshare",
                "account": account,
                "container": share_name(relative),
                "auth": "identity",
            }
        )
        mount = Mount(root, relative.strip("/"), name, guessed=True)
        self.mounts.append(mount)
        ledger.placeholder(
            account,
            f"MIGRATION.md: the copy into datastore `{name}`",
            f"the storage account the cluster mounted at ${root}/{mount.relative}",
        )
        return mount

    def file_server_datastores(self) -> list[str]:
        """The datastores that stand for mounted Batch AI file servers, in order."""
        found = [m.datastore for m in self.mounts if m.datastore and ".fileServers[" in m.field]
        return list(dict.fromkeys(found))

    def resolve(self, text: str) -> tuple[Mount, str] | None:
        """The mount a `$ROOT/<relative>/...` path lies in and the rest of the path, or None."""
        for mount in sorted(self.mounts, key=lambda m: -len(m.relative)):
            for form in (f"${mount.root}/", f"${{{mount.root}}}/"):
                rel = mount.relative.strip("/")
                if text == form + rel or text.startswith(form + rel + "/"):
                    return mount, text[len(form + rel) :].strip("/")
        return None


def unknown_mount(text: str) -> tuple[str, str, str] | None:
    """`$AZ_BATCHAI_MOUNT_ROOT/external/data` -> (root, `external`, `data`) for a mount that was
    not given (a cluster mount when no cluster file was converted); None for other paths."""
    m = re.match(r"^\$\{?(AZ_BATCHAI_(?:JOB_)?MOUNT_ROOT)\}?/([^/]+)/?(.*)$", text)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def _copy_note(account: str, container: str) -> str:
    return (
        f"datastores live in the stack's workspace storage account: copy the data from `{account}`/"
        f"`{container}` (azcopy copy --recursive), or keep using that account through an adlsgen2/blob "
        "datastore registered by hand"
    )


def _auth(creds: AzureStorageCredentialsInfo | None, path: str, ledger: Ledger) -> str:
    """How the datastore authenticates. Keys never leave the input file: they become Pulumi
    secrets the user sets."""
    if creds is None:
        return "identity"
    if creds.account_key is not None:
        ledger.approximated(
            f"{path}.accountKey",
            "stack.yaml: auth accountKey (a Pulumi secret)",
            "the key is not copied: set it with `pulumi config set --secret`, or better "
            "switch to `auth: identity` and grant the compute's identity data access",
        )
        _key_placeholder(ledger)
        return "accountKey"
    if creds.account_key_secret_reference is not None:
        base = f"{path}.accountKeySecretReference"
        for leaf in ("sourceVault.id", "secretUrl"):
            ledger.approximated(
                f"{base}.{leaf}",
                "stack.yaml: auth accountKey (a Pulumi secret)",
                "copy the key from that Key Vault secret into the stack with "
                "`pulumi config set --secret`, or use `auth: identity`",
            )
        _key_placeholder(ledger)
        return "accountKey"
    ledger.mapped(path, "stack.yaml: auth identity")
    return "identity"


def _key_placeholder(ledger: Ledger) -> None:
    ledger.placeholder(
        ACCOUNT_KEY,
        "stack.yaml: trainstack:datastores[<i>].accountKey.secure",
        "the storage account key, set as a secret: "
        "pulumi config set --secret --path 'trainstack:datastores[<i>].accountKey' <key>",
    )
