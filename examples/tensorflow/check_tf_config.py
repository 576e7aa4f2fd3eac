"""Check the TF_CONFIG a TensorFlow task gets, as tf.distribute would read it, and print it.

Exits 1 with the reason when TF_CONFIG is missing or malformed, when this task is not in the
cluster, or when the cluster does not have the expected number of workers and parameter
servers. The task also binds its own address, as a TensorFlow server would.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys


def check(config: dict, workers: int, ps: int) -> str:
    cluster, task = config["cluster"], config["task"]
    if len(cluster.get("worker", [])) != workers or len(cluster.get("ps", [])) != ps:
        raise ValueError(f"expected {workers} worker(s) and {ps} ps, got {cluster}")
    if config.get("environment") != "cloud":
        raise ValueError("environment should be 'cloud'")
    kind, index = task["type"], int(task["index"])
    return cluster[kind][index]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect-workers", type=int, required=True)
    parser.add_argument("--expect-ps", type=int, default=0)
    args = parser.parse_args()
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        print("TF_CONFIG is not set", file=sys.stderr)
        return 1
    try:
        config = json.loads(raw)
        me = check(config, args.expect_workers, args.expect_ps)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        print(f"bad TF_CONFIG {raw}: {exc}", file=sys.stderr)
        return 1
    host, port = me.rsplit(":", 1)
    with socket.socket() as server:  # the port this task would serve on must be free
        server.bind((host, int(port)))
    task = config["task"]
    print(f"task {task['type']}:{task['index']} at {me}", flush=True)
    print(f"cluster {json.dumps(config['cluster'], sort_keys=True)}", flush=True)
    print(f"AZ_BATCHAI_TASK_INDEX={os.environ.get('AZ_BATCHAI_TASK_INDEX')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
