"""The three output files as text: job.yml, stack.yaml and MIGRATION.md."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from trainstack.batchai.fates import Fate, FieldFate, Ledger, leaf_paths


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (commands) as `|` blocks, so a shell script reads as one."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def stack_yaml(entries: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """A stack file fragment: `config:` with the `trainstack:<key>` lists that have entries."""
    config = {f"trainstack:{k}": [dict(e) for e in v] for k, v in entries.items() if v}
    return to_yaml({"config": config})


@dataclass(frozen=True)
class Source:
    """One converted input file, its parsed JSON and the ledger of its fields."""

    path: str
    kind: str
    data: Mapping[str, Any]
    ledger: Ledger


def relevant(source: Source) -> list[FieldFate]:
    """The ledger's records for fields the file has (the converter records whole groups)."""
    leaves = [p for p in leaf_paths(source.data) if p != "$schema"]
    return [
        f
        for f in source.ledger.fates
        if any(_covers(f.path, leaf) or _covers(leaf, f.path) for leaf in leaves)
    ]


def uncovered(source: Source) -> list[str]:
    """Input fields with no record: a converter bug; tests require this to be empty."""
    paths = [f.path for f in source.ledger.fates]
    return [
        leaf
        for leaf in leaf_paths(source.data)
        if leaf != "$schema" and not any(_covers(p, leaf) for p in paths)
    ]


def _covers(parent: str, child: str) -> bool:
    return child == parent or child.startswith(parent + ".") or child.startswith(parent + "[")


def migration_md(sources: Iterable[Source], target: str, target_reason: str, outputs: Sequence[str]) -> str:
    """The report: every input field, what it became and whether it was mapped, approximated
    or is not supported (with why and what to do), then the values to fill in."""
    sources = list(sources)
    lines = ["# Batch AI migration", ""]
    lines.append(
        f"Target: **{target}** ({target_reason}). Files written: "
        + ", ".join(f"`{o}`" for o in outputs)
        + "."
    )
    lines.append("")
    for source in sources:
        records = relevant(source)
        counts = {f: sum(1 for r in records if r.fate is f) for f in Fate}
        lines += [f"## {source.kind}: `{source.path}`", ""]
        lines.append(", ".join(f"{counts[f]} {f.value}" for f in Fate) + ".")
        lines += ["", "| field | fate | became | why / what to do |", "|---|---|---|---|"]
        for r in sorted(records, key=lambda r: r.path):
            lines.append(f"| `{r.path}` | {r.fate.value} | {_cell(r.became)} | {_cell(r.note)} |")
        lines.append("")
    placeholders = [p for s in sources for p in s.ledger.placeholders]
    lines += ["## Values to fill in", ""]
    if placeholders:
        lines += ["| value | where | what |", "|---|---|---|"]
        seen: set[tuple[str, str]] = set()
        for p in placeholders:
            if (p.value, p.where) not in seen:
                seen.add((p.value, p.where))
                lines.append(f"| `{p.value}` | {_cell(p.where)} | {_cell(p.what)} |")
    else:
        lines.append("None.")
    lines += ["", "## At run time", "", RUNTIME_NOTE]
    return "\n".join(lines) + "\n"


RUNTIME_NOTE = (
    "On a trainstack pool the agent sets Batch AI's variables for every process: "
    "`AZ_BATCHAI_JOB_MOUNT_ROOT/<relativeMountPath>` and `AZ_BATCHAI_MOUNT_ROOT/<relativeMountPath>` "
    "lead to the staged datastores, `AZ_BATCHAI_INPUT_<ID>` / `AZ_BATCHAI_OUTPUT_<ID>` to the staged "
    "input and output folders, and `AZ_BATCHAI_TASK_INDEX`, `AZ_BATCHAI_PS_HOSTS`, "
    "`AZ_BATCHAI_WORKER_HOSTS`, `AZ_BATCHAI_PYTORCH_INIT_METHOD`, `AZ_BATCHAI_JOB_TEMP`, "
    "`AZ_BATCHAI_MPI_HOST_FILE` and `AZ_BATCHAI_NUM_GPUS` are set as Batch AI set them; "
    "`AZ_BATCHAI_SHARED_JOB_TEMP` is a folder per node (pool nodes share no disk: scripts that "
    "meet through it need a datastore path instead). Each process's output is also written under "
    "Batch AI's names (`stdout-wk-0.txt`, `stderr-wk-0.txt`, ...) into `AZ_BATCHAI_STDOUTERR_DIR`, "
    "the job's `./logs`, kept with the run. Output paths end in `${{name}}/<pathSuffix>`: "
    "`${{name}}` is the run's id on a pool and the job's name on Azure ML. "
    "Azure ML compute sets none of the `AZ_BATCHAI_*` variables: the job file's paths use "
    "`${{inputs.x}}` / `${{outputs.x}}` instead, but a script that reads them itself needs them "
    "as arguments there."
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "
