"""`trainstack migrate batchai`: Batch AI job, cluster and file server files into a job file,
stack entries and a field-by-field report."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from jobrunner.errors import ConfigError, TrainstackError
from trainstack.batchai.convert import Migration, migrate, migrate_folder, write
from trainstack.batchai.fates import Fate


class TargetChoice(StrEnum):
    pool = "pool"
    amlcompute = "amlcompute"


migrate_app = typer.Typer(
    help="Convert files from retired services into trainstack files.", no_args_is_help=True
)


@migrate_app.command("batchai")
def batchai(
    folder: Annotated[
        Path | None, typer.Argument(help="a folder of Batch AI files: each converted on its own")
    ] = None,
    job: Annotated[Path | None, typer.Option("--job", help="job file (az batchai job create -f)")] = None,
    cluster: Annotated[
        Path | None, typer.Option("--cluster", help="cluster file (az batchai cluster create -f)")
    ] = None,
    fileserver: Annotated[Path | None, typer.Option("--fileserver", help="file server file")] = None,
    out: Annotated[
        Path, typer.Option("--out", help="folder for job.yml, stack.yaml and MIGRATION.md")
    ] = Path("migrated"),
    target: Annotated[
        TargetChoice | None,
        typer.Option("--target", help="pool or amlcompute; default: pool when the files need one"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Convert Batch AI (2018-05-01) files into a jobrunner job file, stack entries and MIGRATION.md.

    Files are validated first; an invalid file exits 1 naming the file, the JSON path and the fix.

    Example:

        trainstack migrate batchai --job job.json --cluster cluster.json --out migrated/

        trainstack migrate batchai recipes/ --out migrated/ --target pool
    """
    console = Console(highlight=False)
    chosen = target.value if target else None
    try:
        if folder is not None:
            if job or cluster or fileserver:
                raise ConfigError("give a folder or --job/--cluster/--fileserver, not both")
            _folder(folder, out, chosen, console, as_json)
            return
        migration = migrate(job=job, cluster=cluster, fileserver=fileserver, target=chosen)  # type: ignore[arg-type]
        written = write(migration, out)
    except TrainstackError as err:
        _fail(err, as_json)
    if as_json:
        print(json.dumps(_summary(migration, [str(p) for p in written]), indent=2, sort_keys=True))
        return
    counts = migration.counts()
    console.print(f"Target: [bold]{migration.target}[/bold] ({escape(migration.target_reason)})")
    console.print(", ".join(f"{counts[f]} {f.value}" for f in Fate) + " fields")
    for path in written:
        console.print(f"wrote {path}", markup=False)
    if migration.placeholders:
        console.print(
            "values to fill in: " + ", ".join(migration.placeholders) + f" (see {out / 'MIGRATION.md'})",
            markup=False,
        )


def _folder(folder: Path, out: Path, target: str | None, console: Console, as_json: bool) -> None:
    if not folder.is_dir():
        raise ConfigError(
            f"{folder}: not a folder", fix="give a folder of Batch AI .json files, or use --job"
        )
    results = migrate_folder(folder, out, target)  # type: ignore[arg-type]
    failed = [r for r in results if r.migration is None]
    if as_json:
        rows = [
            {
                "file": str(r.path),
                "kind": r.kind,
                "ok": r.migration is not None,
                "problems": [str(p) for p in r.problems],
                **(_summary(r.migration, []) if r.migration else {}),
            }
            for r in results
        ]
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        # The file name is what a person acts on: never cut it; the counts are narrow.
        table = Table(title=Text(f"Batch AI files in {folder}"), box=box.SIMPLE_HEAD)
        table.add_column("file", no_wrap=True)
        for col in ("kind", "target"):
            table.add_column(col, no_wrap=True)
        for col in (*(f.value for f in Fate), "to fill in"):
            table.add_column(col, justify="right")
        for r in results:
            m = r.migration
            if m is None:
                table.add_row(
                    Text(str(r.path.relative_to(folder))), "invalid", "-", "-", "-", "-", str(len(r.problems))
                )
                continue
            c = m.counts()
            table.add_row(
                Text(str(r.path.relative_to(folder))),
                r.kind,
                m.target,
                *(str(c[f]) for f in Fate),
                str(len(m.placeholders)),
            )
        # Piped into a file or a pull request, keep every column readable.
        (console if console.is_terminal else Console(highlight=False, width=120)).print(table)
        for r in failed:
            for p in r.problems:
                print(str(p), file=sys.stderr)
    if failed or not results:
        if not results:
            print(f"{folder}: no Batch AI .json files found", file=sys.stderr)
        raise typer.Exit(1)


def _summary(m: Migration, written: list[str]) -> dict[str, Any]:
    return {
        "target": m.target,
        "target_reason": m.target_reason,
        "counts": {f.value: n for f, n in m.counts().items()},
        "placeholders": m.placeholders,
        "written": written,
    }


def _fail(err: TrainstackError, as_json: bool) -> None:
    if as_json:
        problems = [str(p) for p in getattr(err, "problems", ())] or [str(err)]
        print(json.dumps({"ok": False, "problems": problems}, indent=2))
    else:
        print(str(err), file=sys.stderr)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(migrate_app, name="migrate")
