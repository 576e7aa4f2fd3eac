"""Data-parallel training with torch.distributed: each rank fits the same small model on its
shard of a generated regression problem; gradients are averaged by DistributedDataParallel.

Reads what torchrun (or Azure ML) sets: RANK, WORLD_SIZE, MASTER_ADDR/PORT (env:// init) and,
when present, AZ_BATCHAI_PYTORCH_BACKEND (gloo on CPU, nccl on GPU). Rank 0 writes
`model.pt` and `metrics.json` (world size, first and final loss) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

FEATURES = 16
SAMPLES = 4096


def dataset(seed: int = 0) -> TensorDataset:
    """y = x . w + b + noise, the same on every rank (same seed); the sampler shards it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(SAMPLES, FEATURES, generator=g)
    w = torch.randn(FEATURES, 1, generator=g)
    y = x @ w + 0.5 + 0.01 * torch.randn(SAMPLES, 1, generator=g)
    return TensorDataset(x, y)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("outputs"))
    args = parser.parse_args()

    torch.set_num_threads(1)  # several ranks share a few cores; threads would only contend
    backend = os.environ.get("AZ_BATCHAI_PYTORCH_BACKEND") or (
        "nccl" if torch.cuda.is_available() else "gloo"
    )
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    print(
        f"rank {rank}: world_size={world} backend={backend} master={os.environ.get('MASTER_ADDR')}",
        flush=True,
    )

    torch.manual_seed(0)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    model = DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    data = dataset()
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, drop_last=True)

    losses: list[float] = []
    step, epoch, started = 0, 0, time.monotonic()
    while step < args.steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            # The mean over ranks, so every rank logs (and rank 0 records) the same number.
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            losses.append(mean.item() / world)
            step += 1
            print(
                f"rank {rank}: step {step}/{args.steps} loss {losses[-1]:.5f} world_size {world}", flush=True
            )
            if step == args.steps:
                break
        epoch += 1

    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save(model.module.state_dict(), args.out / "model.pt")
        metrics = {
            "world_size": world,
            "backend": backend,
            "steps": args.steps,
            "first_loss": losses[0],
            "final_loss": losses[-1],
            "seconds": round(time.monotonic() - started, 3),
        }
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"rank 0: wrote {args.out / 'model.pt'} and metrics.json: {metrics}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    leave_without_finalizing()


def leave_without_finalizing() -> None:
    """Exit 0 now, skipping the interpreter's shutdown. gloo's worker threads free a finished
    collective's tensors on their own time, and one that does so while the interpreter is
    finalizing cannot take the GIL and aborts the process (SIGABRT, "terminate called without
    an active exception") after the training is done: about one run in twenty-five under load.
    Everything is written and closed by now; only the streams need flushing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
