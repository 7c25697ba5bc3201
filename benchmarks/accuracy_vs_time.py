"""Test accuracy of a method's own classifier (the `head` evaluator's number) after every epoch, against wall time:
what a longer run buys. The run is an ordinary `sslkit run` recipe (the same config resolution, data, label draw
and schedule); after each epoch the evaluated model (for sgan and fixmatch: the moving average) predicts the test
split. The test split is only read for this report, never for training or for a choice.

    python benchmarks/accuracy_vs_time.py --pretext sgan --data mnist --seed 0
    python benchmarks/accuracy_vs_time.py --pretext fixmatch --data fashion-mnist --epochs 10

Prints one line per epoch (epoch, seconds of training so far, test accuracy) and the command that reproduces it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from sslkit import build
from sslkit.config import RunConfig
from sslkit.engine.loop import Trainer, prepare_model
from sslkit.registry import load_registry


@torch.no_grad()
def head_accuracy(pretext: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, info) -> float:
    was = pretext.training
    pretext.eval()
    correct = 0
    for start in range(0, len(images), 2000):
        x = info.normalize(images[start : start + 2000].float() / 255)
        correct += int((pretext.predict(x).argmax(1) == labels[start : start + 2000]).sum())
    pretext.train(was)
    return correct / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretext", default="sgan")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()

    registry = load_registry()
    settings = {"pretext": args.pretext, "data": args.data, "labels": args.labels, "seed": args.seed}
    if args.epochs:
        settings["epochs"] = args.epochs
    if args.data_root:
        settings["data_root"] = args.data_root
    cfg = build.resolve(registry, RunConfig.from_dict(settings))
    torch.manual_seed(cfg.seed)
    data = build.load_data(registry, cfg)
    pretext = build.build_pretext(registry, cfg, build.build_encoder(registry, cfg, data.info), data.info)
    device = torch.device("cpu")
    prepare_model(pretext, device)
    schedule = build.schedule(registry, cfg)
    test = data.bundle.test
    t0, trained = time.perf_counter(), [0.0]
    print(
        f"{cfg.pretext} on {cfg.encoder} ({cfg.data}, {cfg.labels} labels, seed {cfg.seed}), {torch.get_num_threads()} threads"
    )
    print("epoch  train_s  test_accuracy")

    health = pretext.health

    def after_epoch(record: dict) -> str | None:  # called by the trainer after every epoch
        trained[0] += record["seconds"]
        print(
            f"{record['epoch']:5d}  {trained[0]:7.0f}  {head_accuracy(pretext, test.images, test.labels, data.info):.4f}",
            flush=True,
        )
        return health(record)

    pretext.health = after_epoch
    Trainer(pretext, data.pool, data.labeled, schedule, device, cfg.seed, None, show_progress=False).fit()
    print(f"wall {time.perf_counter() - t0:.0f} s (evaluation included)")
    print("reproduce: python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
