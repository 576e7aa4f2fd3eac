"""A small real training run for the sweep example: a linear model fitted to noisy data by
gradient descent, with the learning rate, optimizer and epochs from the command line. Each
epoch's validation loss is logged with plain MLflow (when it is installed), the way an Azure
ML training script logs its sweep's primary metric."""

from __future__ import annotations

import argparse
import random


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--optimizer", choices=["sgd", "momentum"], required=True)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()

    rng = random.Random(0)
    xs = [rng.uniform(-1, 1) for _ in range(256)]
    data = [(x, 3.0 * x - 0.5 + rng.gauss(0, 0.1)) for x in xs]
    train, valid = data[:192], data[192:]
    w = b = vw = vb = 0.0
    beta = 0.9 if args.optimizer == "momentum" else 0.0

    try:
        import mlflow
    except ImportError:  # no tracking client: the loss is printed only
        mlflow = None
    if mlflow:
        mlflow.log_params({"lr": args.lr, "optimizer": args.optimizer})
    for epoch in range(args.epochs):
        for x, y in train:
            err = w * x + b - y
            vw = beta * vw + 2 * err * x
            vb = beta * vb + 2 * err
            w -= args.lr * vw
            b -= args.lr * vb
        loss = sum((w * x + b - y) ** 2 for x, y in valid) / len(valid)
        print(f"epoch {epoch} loss {loss:.6f}", flush=True)
        if mlflow:
            mlflow.log_metric("loss", loss, step=epoch)


if __name__ == "__main__":
    main()
