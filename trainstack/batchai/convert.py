"""Converting Batch AI files: one job / cluster / file server triple into job.yml, stack.yaml
and MIGRATION.md, or every such file in a folder, each on its own."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobrunner.errors import ConfigError, Problem
from trainstack.batchai.cluster import compute_name, convert_cluster, needs_pool
from trainstack.batchai.fates import Fate, Ledger
from trainstack.batchai.fileserver import convert_fileserver
from trainstack.batchai.job import Target, convert_job
from trainstack.batchai.mounts import MountTable
from trainstack.batchai.older_api import upgrade
from trainstack.batchai.render import Source, migration_md, stack_yaml, to_yaml
from trainstack.batchai.schema import SUPPORTED_VERSION, Kind, declared_version, detect_kind, load, read_json


@dataclass(frozen=True)
class Migration:
    """What one conversion produced: the output files' text and the record behind them."""

    target: Target
    target_reason: str
    sources: tuple[Source, ...]
    files: dict[str, str] = field(default_factory=dict)  # file name -> text

    def counts(self) -> dict[Fate, int]:
        out = dict.fromkeys(Fate, 0)
        for s in self.sources:
            for fate, n in s.ledger.counts().items():
                out[fate] += n
        return out

    @property
    def placeholders(self) -> list[str]:
        return list(dict.fromkeys(p.value for s in self.sources for p in s.ledger.placeholders))


def migrate(
    *,
    job: Path | None = None,
    cluster: Path | None = None,
    fileserver: Path | None = None,
    target: Target | None = None,
) -> Migration:
    """Convert the given files together (the job sees the cluster's mounts).

    Raises ConfigError (every problem, with file, JSON path and fix) when a file is missing,
    not JSON, of another kind than given, or invalid against the 2018-05-01 schema.
    """
    if not (job or cluster or fileserver):
        raise ConfigError([Problem(None, "", "nothing to convert", "give --job, --cluster or --fileserver")])
    problems: list[Problem] = []
    parsed: dict[Kind, tuple[Path, Any]] = {}
    given: tuple[tuple[Kind, Path | None], ...] = (
        ("job", job),
        ("cluster", cluster),
        ("fileserver", fileserver),
    )
    for kind, path in given:
        if path is None:
            continue
        try:
            parsed[kind] = (path, load(path, kind)[1])
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems)
    chosen, reason = _choose_target(parsed, target)
    mounts = MountTable()
    sources: list[Source] = []
    stack: dict[str, list[dict[str, Any]]] = {"clusters": [], "pools": [], "datastores": []}
    files: dict[str, str] = {}
    if "cluster" in parsed:
        path, model = parsed["cluster"]
        ledger = Ledger()
        key, entry = convert_cluster(model.properties, compute_name(path.stem), mounts, ledger, target=chosen)
        stack[key].append(entry)
        sources.append(_source(path, "cluster", ledger))
    if "job" in parsed:
        path, model = parsed["job"]
        ledger = Ledger()
        job_name = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem)
        job_file = convert_job(model.properties, job_name, mounts, ledger, target=chosen)
        job_file.update(upgrade(read_json(path), "job").job_fields)  # e.g. 2018-03-01 experimentName
        files["job.yml"] = to_yaml(job_file)
        sources.append(_source(path, "job", ledger))
    if "fileserver" in parsed:
        path, model = parsed["fileserver"]
        ledger = Ledger()
        # The file server that the job or cluster mounts is this one when it mounts just one.
        mounted = mounts.file_server_datastores()
        name = mounted[0] if len(mounted) == 1 else path.stem
        entry = convert_fileserver(model.properties, name, ledger)
        if entry["name"] not in mounted:
            stack["datastores"].append(entry)
        sources.append(_source(path, "file server", ledger))
    stack["datastores"][:0] = mounts.datastores
    if any(stack.values()):
        files["stack.yaml"] = stack_yaml(stack)
    outputs = [*files, "MIGRATION.md"]
    files["MIGRATION.md"] = migration_md(sources, chosen, reason, outputs)
    return Migration(chosen, reason, tuple(sources), files)


def _source(path: Path, kind: str, ledger: Ledger) -> Source:
    data = read_json(path)
    version = declared_version(data)
    older = upgrade(data, "fileserver" if kind == "file server" else kind).fates
    if version and version != SUPPORTED_VERSION:
        ledger.approximated(
            "$schema",
            "-",
            f"the file names schema {version}; it was read as {SUPPORTED_VERSION}"
            + (", its older-API keys mapped as listed" if older else ", whose fields it uses"),
        )
    ledger.fates.extend(older)
    return Source(str(path), kind, data, ledger)


def _choose_target(parsed: dict[Kind, tuple[Path, Any]], target: Target | None) -> tuple[Target, str]:
    if target:
        return target, "chosen with --target"
    if "cluster" in parsed and needs_pool(parsed["cluster"][1].properties):
        return "pool", "the cluster's nodeSetup (setup task or mounts) runs only on a pool"
    if "job" in parsed:
        props = parsed["job"][1].properties
        if props.mount_volumes and props.mount_volumes.unmanaged_file_systems:
            return "pool", "the job mounts unmanaged file systems, which only a pool can do"
    return "amlcompute", "nothing in the files needs a self-managed pool"


def write(migration: Migration, out: Path) -> list[Path]:
    """Write the output files into `out` (created if needed). Raises ConfigError when `out`
    is a file or cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            [
                Problem(
                    str(out),
                    "",
                    f"cannot create the output folder: {exc}",
                    "give --out a folder you can write",
                )
            ]
        ) from None
    written = []
    for name, text in migration.files.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


@dataclass(frozen=True)
class FolderResult:
    """One file of a folder conversion: its outcome, or the problems that stopped it."""

    path: Path
    kind: str
    migration: Migration | None
    problems: tuple[Problem, ...] = ()


def migrate_folder(folder: Path, out: Path, target: Target | None = None) -> list[FolderResult]:
    """Convert every `*.json` Batch AI file under `folder` on its own, into `out/<name>/`.

    A file that fails is reported in its result, never raised; the schemas folder that
    Azure/BatchAI ships next to samples is skipped.
    """
    results: list[FolderResult] = []
    for path in sorted(folder.rglob("*.json")):
        try:
            data = read_json(path)
            if _is_json_schema(data):
                continue
            kind = detect_kind(data)
            if kind is None:
                raise ConfigError([Problem(str(path), "", "not a Batch AI job, cluster or file server file")])
            migration = migrate(**{kind: path}, target=target)
        except ConfigError as err:
            results.append(FolderResult(path, "?", None, err.problems))
            continue
        rel = path.relative_to(folder).with_suffix("")
        write(migration, out / Path(*rel.parts))
        results.append(FolderResult(path, kind, migration))
    return results


def _is_json_schema(data: dict[str, Any]) -> bool:
    """Azure/BatchAI keeps its JSON Schemas next to the samples; they are not inputs."""
    return "definitions" in data and "title" in data
