"""Count words in a shard of an input folder, the way a Batch AI job script found its files:
through `$AZ_BATCHAI_*` variables and paths under `$AZ_BATCHAI_JOB_MOUNT_ROOT`.

Rank r ($AZ_BATCHAI_TASK_INDEX) of WORLD_SIZE counts every WORLD_SIZE-th file of --data (sorted) and writes
`counts-<r>.json` to --out. Before that it checks the layout a Batch AI job relied on and
exits 1 naming what is wrong: the mount root holds the `data` mount with the same files as
--data, the input and output variables name --data and --out, the output folder is reachable
at `$AZ_BATCHAI_JOB_MOUNT_ROOT/logs/<run id>/counts`, and the temp folders exist.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def check_layout(data: Path, out: Path) -> list[str]:
    env = os.environ
    problems = []
    root = Path(env["AZ_BATCHAI_JOB_MOUNT_ROOT"])
    mounted = root / "data" / "corpus"
    if sorted(p.name for p in mounted.iterdir()) != sorted(p.name for p in data.iterdir()):
        problems.append(f"{mounted} does not hold the files of {data}")
    if env.get("AZ_BATCHAI_INPUT_CORPUS") != str(data):
        problems.append(f"AZ_BATCHAI_INPUT_CORPUS={env.get('AZ_BATCHAI_INPUT_CORPUS')} is not {data}")
    if env.get("AZ_BATCHAI_OUTPUT_COUNTS") != str(out):
        problems.append(f"AZ_BATCHAI_OUTPUT_COUNTS={env.get('AZ_BATCHAI_OUTPUT_COUNTS')} is not {out}")
    via_mount = root / "logs" / env["AZUREML_RUN_ID"] / "counts"
    if via_mount.resolve() != out.resolve():
        problems.append(f"{via_mount} does not lead to the output folder {out}")
    for name in ("AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR"):
        if not Path(env.get(name, "/nonexistent")).is_dir():
            problems.append(f"{name}={env.get(name)} is not a folder")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    # Batch AI scripts take their rank from the task index.
    rank, world = int(os.environ["AZ_BATCHAI_TASK_INDEX"]), int(os.environ["WORLD_SIZE"])
    problems = check_layout(args.data, args.out)
    if str(rank) != os.environ.get("RANK"):
        problems.append(f"AZ_BATCHAI_TASK_INDEX={rank} is not the process's RANK {os.environ.get('RANK')}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    files = sorted(p for p in args.data.iterdir() if p.is_file())[rank::world]
    counts: dict[str, int] = {}
    for f in files:
        for word in f.read_text().split():
            counts[word] = counts.get(word, 0) + 1
    (Path(os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"]) / f"rank-{rank}").write_text("here\n")
    (args.out / f"counts-{rank}.json").write_text(json.dumps(counts, sort_keys=True) + "\n")
    print(f"rank {rank} counted {sum(counts.values())} words in {len(files)} file(s)", flush=True)
    print(f"rank {rank} done", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
