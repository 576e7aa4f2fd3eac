"""Training that survives losing its nodes: save a checkpoint every few steps, resume from the
latest one.

Each rank trains the same small model with DistributedDataParallel (gloo on CPU, nccl on
GPU). The batch of step `s` on rank `r` is generated from the seed (s, r), so a run resumed
from a checkpoint sees exactly the batches an uninterrupted run would: the final weights
match. Rank 0 writes `step-<n>.pt` (model, optimizer, step) into --checkpoints, through a
temporary file outside that folder and a rename, so that the agent never uploads half a
checkpoint; it keeps the latest `--keep` of them. At the end it writes `final.json`.

Where the checkpoints come from on a new attempt: the job runner uploads the output folder
while the job runs and stages it back on every node before the next attempt starts; on
Azure ML the output is a mounted folder that outlives the attempt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

FEATURES = 16
BATCH = 64
CHECKPOINT = re.compile(r"step-(\d+)\.pt")


def batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of `step` on `rank`: the same in every attempt."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    x = torch.randn(BATCH, FEATURES, generator=g)
    w = torch.arange(FEATURES, dtype=torch.float32).unsqueeze(1) / FEATURES
    return x, x @ w + 0.5


def latest_step(folder: Path) -> int:
    """The step of the latest checkpoint in `folder` (0: none)."""
    return max(
        (int(m.group(1)) for p in folder.glob("step-*.pt") if (m := CHECKPOINT.fullmatch(p.name))), default=0
    )


def checkpoint_file(folder: Path, step: int) -> Path:
    return folder / f"step-{step:06d}.pt"


def save(
    folder: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, keep: int
) -> None:
    tmp = Path.cwd() / f".step-{step}.pt.partial"  # same file system as the outputs, not synced
    torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp)
    os.replace(tmp, checkpoint_file(folder, step))
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        old.unlink()


def checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}={tensor.detach().cpu().flatten().tolist()}".encode())
    return digest.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--save-every", type=int, default=5)
    parser.add_argument("--step-seconds", type=float, default=0.0, help="pause per step (to watch it)")
    parser.add_argument("--keep", type=int, default=3)
    parser.add_argument("--checkpoints", type=Path, default=Path("outputs/checkpoints"))
    args = parser.parse_args()

    torch.set_num_threads(1)
    backend = os.environ.get("AZ_BATCHAI_PYTORCH_BACKEND") or (
        "nccl" if torch.cuda.is_available() else "gloo"
    )
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    args.checkpoints.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    # every rank loads the checkpoint rank 0 chose, so that all resume from the same step
    chosen = torch.tensor([latest_step(args.checkpoints) if rank == 0 else 0])
    dist.broadcast(chosen, src=0)
    start = int(chosen.item())
    if start:
        state = torch.load(checkpoint_file(args.checkpoints, start), weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    print(f"rank {rank}: world_size={world} resuming from step {start}", flush=True)
    model = DistributedDataParallel(net)

    for step in range(start + 1, args.steps + 1):
        x, y = batch(step, rank)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        print(f"rank {rank}: step {step}/{args.steps} loss {loss.item():.6f}", flush=True)
        if rank == 0 and step % args.save_every == 0:
            save(args.checkpoints, step, net, optimizer, args.keep)
        time.sleep(args.step_seconds)

    if rank == 0:
        final = {"steps": args.steps, "resumed_from": start, "world_size": world, "weights": checksum(net)}
        (args.checkpoints / "final.json").write_text(json.dumps(final, indent=2) + "\n")
        print(f"rank 0: done: {final}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    leave_without_finalizing()


def leave_without_finalizing() -> None:
    """Exit 0 now, skipping the interpreter's shutdown, in which a gloo worker thread still
    freeing a collective's tensors aborts the process (see examples/ddp/train.py)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
