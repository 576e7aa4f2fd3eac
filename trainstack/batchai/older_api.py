"""Batch AI files written for the APIs before 2018-05-01 (2018-03-01, 2017-09-01-preview),
brought to the 2018-05-01 shape the converter reads, with a record of each older key.

`az batchai` accepted such files until May 2018 (its deserializer ignored keys it did not
know), so files written then carry keys that 2018-05-01 dropped or renamed. The reference is
Microsoft's REST specs (Azure/azure-rest-api-specs,
`specification/batchai/resource-manager/Microsoft.BatchAI/stable/2018-03-01/BatchAI.json`
against `.../stable/2018-05-01/BatchAI.json`):

- `location`, `tags` at the top of a job, cluster or file server (`*CreateParameters`): in
  2018-05-01 they belong to the workspace;
- job `experimentName` and `priority` (-1000..1000): an experiment became a resource,
  the priority `schedulingPriority` (low/normal/high);
- `outputDirectories[].type` (model/logs/summary/custom) and `.createNew`;
- `nodeSetup.setupTask.runElevated`;
- the 2017-09-01-preview name `credentialsInfo` of a mount's `credentials` (with
  `accountKeySecretUrl`, a Key Vault secret URL);
- fields that the service reported and `az batchai ... show` printed (`toolType`,
  `provisioningState`, `creationTime`, ...): copies of a shown resource carry them; and `null`
  values, which those copies hold for every unset field.

Only keys that 2018-05-01 does not know are touched, so a typo of a current key still reaches
the schema check and its "did you mean".
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainstack.batchai.fates import Fate, FieldFate

Y = "job.yml"
OLDER_VERSIONS = ("2018-03-01", "2017-09-01-preview")
OLDER = "an older-API key (2018-03-01)"
PREVIEW = "an older-API key (2017-09-01-preview)"

# Output-only fields of the GET models (what `az batchai job/cluster/file-server show` printed).
_SHOWN = {
    "job": (
        "toolType", "jobOutputDirectoryPathSegment", "creationTime", "provisioningState",
        "provisioningStateTransitionTime", "executionState", "executionStateTransitionTime", "executionInfo",
    ),
    "cluster": (
        "creationTime", "provisioningState", "provisioningStateTransitionTime", "allocationState",
        "allocationStateTransitionTime", "errors", "currentNodeCount", "nodeStateCounts",
    ),
    "fileserver": (
        "mountSettings", "provisioningStateTransitionTime", "creationTime", "provisioningState",
    ),
}  # fmt: skip
# Resource envelope fields of a shown resource, beside `properties`.
_ENVELOPE = ("id", "name", "type", "resourceGroup")


@dataclass
class Upgrade:
    """The file in the 2018-05-01 shape, what became of each older key, and job.yml fields
    that the older keys carry (`experiment_name`, `tags`)."""

    data: dict[str, Any]
    fates: list[FieldFate] = field(default_factory=list)
    job_fields: dict[str, Any] = field(default_factory=dict)

    def note(self, path: str, fate: Fate, became: str, note: str) -> None:
        self.fates.append(FieldFate(path, fate, became, note))


def upgrade(data: Mapping[str, Any], kind: str) -> Upgrade:
    """`data` with the older API's keys mapped or dropped (see the module docstring)."""
    probe = Upgrade(copy.deepcopy(dict(data)))
    _keys(probe.data, kind, probe)
    # A current file's `null` stays an error (Batch AI refused it); an older one's means unset.
    older = probe.fates or str(data.get("$schema", "")).split("/schemas/")[-1].startswith(OLDER_VERSIONS)
    out = copy.deepcopy(dict(data))
    up = Upgrade(out)
    if older:
        for path in _strip_nulls(out):
            up.note(path, Fate.MAPPED, "-", "left out: null, as a shown older resource gives an unset field")
    _keys(out, kind, up)
    return up


def _keys(out: dict[str, Any], kind: str, up: Upgrade) -> None:
    for key, what in (("location", "the region"), ("tags", "the resource's tags")):
        if key in out:
            out.pop(key)
            note = f"{OLDER}: in 2018-05-01 {what} came from the workspace; "
            note += (
                "the stack's workspace sets it (trainstack:workspace.location)"
                if key == "location"
                else ("put them in trainstack:tags of the stack")
            )
            up.note(key, Fate.APPROXIMATED, "stack.yaml" if key == "location" else "-", note)
    for key in _ENVELOPE:
        if key in out:
            out.pop(key)
            up.note(key, Fate.MAPPED, "-", "left out: set by the service on a shown resource, not an input")
    props = out.get("properties")
    if not isinstance(props, dict):
        return
    for key in _SHOWN.get(kind, ()):
        if key in props:
            props.pop(key)
            note = "left out: reported by the service, not an input"
            if key == "toolType":  # 2018-03-01 files given to `az batchai job create` often carry it
                note = f"{OLDER}: left out, the toolkit is the job's `*Settings` key; the service reported it"
            up.note(f"properties.{key}", Fate.MAPPED, "-", note)
    if kind == "job":
        _job(props, up)
    if kind == "cluster":
        _cluster(props, up)


def _job(props: dict[str, Any], up: Upgrade) -> None:
    if "experimentName" in props:
        up.job_fields["experiment_name"] = props.pop("experimentName")
        up.note("properties.experimentName", Fate.MAPPED, f"{Y}: experiment_name", OLDER)
    if "priority" in props:
        value = props.pop("priority")
        level = _scheduling_priority(value)
        if level is not None and "schedulingPriority" not in props:
            props["schedulingPriority"] = level
        note = f"{OLDER}: -1000..1000 became low (<0), normal (0) or high (>0)"
        became = f"properties.schedulingPriority = {level}" if level else "-"
        up.note("properties.priority", Fate.APPROXIMATED, became, note if level else f"{note}; not a number")
    for i, out in enumerate(_items(props.get("outputDirectories"))):
        if not isinstance(out, dict):
            continue
        if "type" in out:
            out.pop("type")
            note = f"{OLDER}: the kind (model, logs, summary, custom) only labelled it; every output is kept"
            up.note(f"properties.outputDirectories[{i}].type", Fate.MAPPED, "-", note)
        if "createNew" in out:
            create = out.pop("createNew")
            path = f"properties.outputDirectories[{i}].createNew"
            if create is False:
                note = (
                    f"{OLDER}: a pool always gives each run a new output folder; copy into an existing path"
                )
                up.note(path, Fate.APPROXIMATED, "-", note)
            else:
                up.note(path, Fate.MAPPED, "-", f"{OLDER}: a new folder per run, as 2018-05-01 always did")
    _mount_volumes(props.get("mountVolumes"), "properties.mountVolumes", up)


def _cluster(props: dict[str, Any], up: Upgrade) -> None:
    setup = props.get("nodeSetup")
    if not isinstance(setup, dict):
        return
    task = setup.get("setupTask")
    if isinstance(task, dict):
        if "runElevated" in task:
            task.pop("runElevated")
            note = f"{OLDER}: a pool's node setup runs as the agent's user (root), elevated either way"
            up.note("properties.nodeSetup.setupTask.runElevated", Fate.APPROXIMATED, "-", note)
        if "stdOutErrPathSuffix" in task:
            task.pop("stdOutErrPathSuffix")
            note = "left out: reported by the service, not an input"
            up.note("properties.nodeSetup.setupTask.stdOutErrPathSuffix", Fate.MAPPED, "-", note)
    _mount_volumes(setup.get("mountVolumes"), "properties.nodeSetup.mountVolumes", up)


def _mount_volumes(volumes: Any, where: str, up: Upgrade) -> None:
    if not isinstance(volumes, dict):
        return
    for kind in ("azureFileShares", "azureBlobFileSystems"):
        for i, mount in enumerate(_items(volumes.get(kind))):
            if not isinstance(mount, dict) or "credentialsInfo" not in mount:
                continue
            path = f"{where}.{kind}[{i}].credentialsInfo"
            info = mount.pop("credentialsInfo")
            creds = dict(info) if isinstance(info, dict) else {}
            if "accountKeySecretUrl" in creds:
                creds.pop("accountKeySecretUrl")
                note = f"{PREVIEW}: a Key Vault secret URL; give the key as a stack secret instead"
                up.note(f"{path}.accountKeySecretUrl", Fate.UNSUPPORTED, "-", note)
            if creds:
                mount.setdefault("credentials", creds)
            up.note(
                path, Fate.MAPPED, f"{where}.{kind}[{i}].credentials", f"{PREVIEW}: renamed `credentials`"
            )


def _items(value: Any) -> list[Any]:
    """A list member as a list; anything else (the schema check reports it) as none."""
    return value if isinstance(value, list) else []


def _scheduling_priority(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return "low" if value < 0 else "high" if value > 0 else "normal"


def _strip_nulls(node: Any) -> list[str]:
    """Remove every `null` member of every object in `node`; their paths, as fates name them."""
    found = list(_null_members(node, ""))
    for parent, key, _ in found:
        del parent[key]
    return [path for _, _, path in found]


def _null_members(node: Any, prefix: str) -> Iterator[tuple[dict[str, Any], str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if value is None:
                yield node, key, path
            else:
                yield from _null_members(value, path)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _null_members(item, f"{prefix}[{i}]")
