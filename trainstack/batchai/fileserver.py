"""A Batch AI file server (an NFS server on a VM with data disks) as a datastore: an Azure
Files share in the stack's workspace storage account. The VM, its SSH access and its disks
have no counterpart: the share is a managed service, reached through the datastore."""

from __future__ import annotations

from typing import Any

from trainstack.batchai.fates import Ledger
from trainstack.batchai.models import FileServerProperties
from trainstack.batchai.mounts import datastore_name, share_name

S = "stack.yaml"


def convert_fileserver(props: FileServerProperties, name: str, ledger: Ledger) -> dict[str, Any]:
    """The `trainstack:datastores` entry replacing the file server `name`, recording the fate
    of each field. Never fails on a validated file."""
    store = datastore_name(name)
    where = f"{S}: trainstack:datastores `{store}`"
    entry: dict[str, Any] = {
        "name": store,
        "kind": "fileshare",
        "container": share_name(name),
        "auth": "identity",
    }
    ledger.placeholder(
        "<FILE_SERVER_HOST>",
        f"MIGRATION.md: the copy into datastore `{store}`",
        "the file server's address (`az batchai file-server show --query mountSettings`), "
        "to copy its data into the share before the file server is deleted",
    )
    if props.vm_size:
        ledger.unsupported(
            "properties.vmSize",
            "a file share has no VM: its throughput follows its size (premium) or is fixed (standard)",
        )
    disks = props.data_disks
    if disks:
        gib = disks.disk_size_in_gb * disks.disk_count
        for leaf in ("diskSizeInGB", "diskCount"):
            ledger.approximated(
                f"properties.dataDisks.{leaf}",
                f"{where} (share `{entry['container']}`)",
                f"{disks.disk_count} disk(s) of {disks.disk_size_in_gb} GB held up to {gib} GB: the "
                "share grows as needed (100 TiB at most), so no size is set; copy the data over "
                "with azcopy or rsync from a node that mounts both",
            )
        ledger.approximated(
            "properties.dataDisks.storageAccountType",
            f"{where} (a standard share in the workspace's storage account)",
            f"{disks.storage_account_type} disks become a standard (SMB) share; for premium "
            "throughput or NFS, register a share on a premium FileStorage account by hand",
        )
        if disks.caching_type:
            ledger.unsupported("properties.dataDisks.cachingType", "a file share has no host disk cache")
    ssh = props.ssh_configuration
    if ssh:
        user = ssh.user_account_settings
        leaves = ["userAccountSettings.adminUserName"]
        leaves += ["userAccountSettings.adminUserSshPublicKey"] if user.admin_user_ssh_public_key else []
        leaves += ["userAccountSettings.adminUserPassword"] if user.admin_user_password else []
        leaves += ["publicIPsToAllow"] if ssh.public_ips_to_allow is not None else []
        for leaf in leaves:
            ledger.unsupported(
                f"properties.sshConfiguration.{leaf}",
                "a file share has no login (and no credential is copied): reach the data "
                "through the datastore, `jobrunner data` or `az storage file`",
            )
    if props.subnet:
        ledger.approximated(
            "properties.subnet.id",
            f"{where} (private endpoint)",
            "put a private endpoint for the storage account in this subnet so that nodes "
            "reach the share without public access",
        )
    return entry
