"""A training loop that logs with plain MLflow, as a script written for Azure ML does.

Every node's process calls `mlflow.start_run()`, which resumes the run named by
MLFLOW_RUN_ID (set by the pool, as Azure ML sets it), so the ranks of all nodes share one
MLflow run. Rank 0 logs the params and the loss of every step; each rank logs its own
throughput under `rank_<r>/samples_per_s`; at the end rank 0 logs `summary.json` as an
artifact, which a local pool keeps beside the run's outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import mlflow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--step-s", type=float, default=0.2, help="seconds each step takes")
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", os.environ.get("NODE_RANK", "0")))
    with mlflow.start_run():
        if rank == 0:
            mlflow.log_params(
                {"steps": args.steps, "learning_rate": args.lr, "world_size": os.environ["WORLD_SIZE"]}
            )
        loss = 2.0
        for step in range(args.steps):
            started = time.monotonic()
            time.sleep(args.step_s)
            loss *= 1 - args.lr * (1 + 0.5 * math.sin(step / 3)) / 2
            if rank == 0:
                mlflow.log_metric("loss", loss, step=step)
            samples_per_s = 64 / max(time.monotonic() - started, 1e-6)
            mlflow.log_metric(f"rank_{rank}/samples_per_s", samples_per_s, step=step)
        if rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                summary = Path(tmp) / "summary.json"
                summary.write_text(json.dumps({"steps": args.steps, "final_loss": loss}))
                mlflow.log_artifact(str(summary))
        print(f"rank {rank}: {args.steps} steps logged, final loss {loss:.4f}")


if __name__ == "__main__":
    main()
