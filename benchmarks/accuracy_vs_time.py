"""Test accuracy of a method's own classifier (the `head` evaluator's number) after every epoch, against wall time:
what a longer run buys. Methods without a classifier of their own (dcgan, rotation, simclr, ...) are scored by the
`linear` evaluator's probe on their frozen features (C by 3-fold cross-validation on the labeled split). The run
is an ordinary `sslkit run` recipe (the same config resolution, data, label draw and schedule); after each epoch
the evaluated model (for sgan and fixmatch: the moving average) predicts the test split. The test split is only read for this report, never for training or for a choice.

    python benchmarks/accuracy_vs_time.py --pretext sgan --data mnist --seed 0
    python benchmarks/accuracy_vs_time.py --pretext fixmatch --data fashion-mnist --epochs 10
    python benchmarks/accuracy_vs_time.py --pretext dcgan --encoder dcgan-disc --data mnist --epochs 10

Prints one line per epoch (epoch, seconds of training so far, test accuracy) and the command that reproduces it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from sslkit import Pretext, build, fit_probe
from sslkit.config import RunConfig, parse_assignments
from sslkit.engine.loop import Trainer, prepare_model
from sslkit.registry import load_registry


@torch.no_grad()
def outputs(model, images: torch.Tensor, info) -> torch.Tensor:
    """``model`` applied to normalized uint8 images in chunks, in eval mode."""
    return torch.cat(
        [model(info.normalize(images[i : i + 2000].float() / 255)) for i in range(0, len(images), 2000)]
    )


def test_accuracy(pretext: torch.nn.Module, labeled, test, info, seed: int) -> float:
    """The pretext's own classifier on the test split; without one, a linear probe on its encoder's features."""
    was = pretext.training
    pretext.eval()
    if type(pretext).predict is not Pretext.predict:  # as the head evaluator tells
        predicted = outputs(pretext.predict, test.images, info).argmax(1)
    else:
        train_x = outputs(pretext.encoder, labeled.images, info)
        probe = fit_probe(train_x, labeled.labels, info.num_classes, folds=3, seed=seed)
        predicted = probe.logits(outputs(pretext.encoder, test.images, info)).argmax(1)
    pretext.train(was)
    return float((predicted == test.labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretext", default="sgan")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", help="default: the recipe's")
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--lr", type=float, help="default: the recipe's")
    parser.add_argument("--pool-size", type=int, help="default: the whole unlabeled pool")
    parser.add_argument("--pretext-opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--encoder-opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()

    registry = load_registry()
    settings = {"pretext": args.pretext, "data": args.data, "labels": args.labels, "seed": args.seed}
    for key in ("encoder", "epochs", "lr", "pool_size"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    for kind in ("pretext", "encoder"):
        options = parse_assignments(getattr(args, f"{kind}_opt"), f"--{kind}-opt")
        if options:
            settings[f"{kind}_options"] = options
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
    print("epoch  train_s  test_accuracy  (the epoch's mean training terms)")

    health = pretext.health

    def after_epoch(record: dict) -> str | None:  # called by the trainer after every epoch
        trained[0] += record["seconds"]
        print(
            f"{record['epoch']:5d}  {trained[0]:7.0f}  {test_accuracy(pretext, data.labeled, test, data.info, cfg.seed):.4f}  "
            + " ".join(
                f"{k} {v:.4g}"
                for k, v in record.items()
                if k not in ("epoch", "seconds") and isinstance(v, float)
            ),
            flush=True,
        )
        return health(record)

    pretext.health = after_epoch
    Trainer(pretext, data.pool, data.labeled, schedule, device, cfg.seed, None, show_progress=False).fit()
    print(f"wall {time.perf_counter() - t0:.0f} s (evaluation included)")
    print("reproduce: python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
