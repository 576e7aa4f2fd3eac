"""A Batch AI file server (an NFS server on a VM with data disks) as a datastore: an Azure
Files share of the same size, NFS-capable on premium storage. The VM, its SSH access and its
disks have no counterpart: the share is a managed service."""

from __future__ import annotations

import re
from typing import Any

from trainstack.batchai.fates import Ledger
from trainstack.batchai.models import FileServerProperties
from trainstack.batchai.mounts import datastore_name

S = "stack.yaml"


def convert_fileserver(props: FileServerProperties, name: str, ledger: Ledger) -> dict[str, Any]:
    """The `trainstack:datastores` entry replacing one file server."""
    store = datastore_name(name)
    where = f"{S}: trainstack:datastores `{store}`"
    entry: dict[str, Any] = {
        "name": store,
        "kind": "fileshare",
        "account": "<FILE_SERVER_STORAGE_ACCOUNT>",
        "container": store,
        "auth": "identity",
    }
    ledger.placeholder(
        "<FILE_SERVER_STORAGE_ACCOUNT>",
        f"{where}.account",
        "the storage account that will hold the share replacing the file server",
    )
    if props.vm_size:
        ledger.unsupported(
            "properties.vmSize",
            "a file share has no VM: its throughput follows its size (premium) or is fixed (standard)",
        )
    disks = props.data_disks
    if disks:
        gib = disks.disk_size_in_gb * disks.disk_count
        entry["quotaGiB"] = gib
        for leaf in ("diskSizeInGB", "diskCount"):
            ledger.mapped(f"properties.dataDisks.{leaf}", f"{where}.quotaGiB = {gib}")
        premium = disks.storage_account_type == "Premium_LRS"
        entry["tier"] = "Premium" if premium else "TransactionOptimized"
        ledger.approximated(
            "properties.dataDisks.storageAccountType",
            f"{where}.tier = {entry['tier']}",
            "disk tiers become share tiers; NFS mounts need Premium (FileStorage accounts)",
        )
        if disks.caching_type:
            ledger.unsupported("properties.dataDisks.cachingType", "a file share has no host disk cache")
    ssh = props.ssh_configuration
    if ssh:
        for leaf in (
            "userAccountSettings.adminUserName",
            "userAccountSettings.adminUserSshPublicKey",
            "userAccountSettings.adminUserPassword",
            "publicIPsToAllow",
        ):
            ledger.unsupported(
                f"properties.sshConfiguration.{leaf}",
                "a file share has no login (and no "
                "credential is copied): reach the data through the datastore or `az storage`",
            )
    if props.subnet:
        ledger.approximated(
            "properties.subnet.id",
            f"{where} (private endpoint)",
            "put a private endpoint for the storage account in this subnet so that nodes "
            "reach the share without public access",
        )
    return entry


def _share_name(name: str) -> str:
    """A share name (3-63 of a-z, 0-9, single `-`) from the file server's name."""
    text = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-")
    return (text or "fileserver").ljust(3, "0")[:63].strip("-")
