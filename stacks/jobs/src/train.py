"""A small distributed MNIST-shaped training loop (synthetic data if the folder is empty)."""

import argparse
import os
from pathlib import Path

import torch
import torch.distributed as dist


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data", default=".")
    parser.add_argument("--out", default="outputs")
    args = parser.parse_args()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else "cpu"
    )
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).to(device)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(int(os.environ.get("RANK", "0")))
    for epoch in range(args.epochs):
        images = torch.rand(64, 1, 28, 28, generator=generator).to(device)
        labels = torch.randint(0, 10, (64,), generator=generator).to(device)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"epoch {epoch} loss {loss.item():.4f}", flush=True)
    if int(os.environ.get("RANK", "0")) == 0:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), Path(args.out) / "model.pt")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
