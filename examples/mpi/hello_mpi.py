"""One MPI rank: read the rank, size and local rank OpenMPI sets, check them, print them, and
write `rank-<r>.json` to --out. Exits 1 when not started by mpirun or when the values disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
        size = int(os.environ["OMPI_COMM_WORLD_SIZE"])
        local_rank = int(os.environ["OMPI_COMM_WORLD_LOCAL_RANK"])
        local_size = int(os.environ["OMPI_COMM_WORLD_LOCAL_SIZE"])
    except (KeyError, ValueError) as exc:
        print(f"not started by OpenMPI's mpirun: {exc}", file=sys.stderr)
        return 1
    if not (0 <= rank < size and 0 <= local_rank < local_size <= size):
        print(f"inconsistent ranks: {rank=} {size=} {local_rank=} {local_size=}", file=sys.stderr)
        return 1
    facts = {
        "rank": rank,
        "size": size,
        "local_rank": local_rank,
        "local_size": local_size,
        "host": socket.gethostname(),
        "master": os.environ.get("AZ_BATCHAI_MPI_MASTER_NODE"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank-{rank}.json").write_text(json.dumps(facts) + "\n")
    print(f"hello from rank {rank} of {size} (local {local_rank} of {local_size})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
