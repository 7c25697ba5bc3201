"""Model-only speed of a pretext's training step on pre-made tensors: plain eager PyTorch vs the engine's
channels_last layout and its fused optimizers (one kernel for all parameters; and torch.compile with --compile),
and, on a CPU with native bfloat16, the bfloat16 autocast a run then uses for its training steps.
No data loading, no augmentation differences: the same batch every step, so the ratio isolates the model step.

    python benchmarks/model_step.py --pretext rotation --encoder convnet --threads 2
    python benchmarks/model_step.py --pretext fixmatch --threads 2     # the recipe's encoder; labeled batch / mu
    python benchmarks/model_step.py --pretext fixmatch --encoder-opt stages=2 --encoder-opt convs=3  # its old layout
    python benchmarks/model_step.py --pretext sgan --encoder wn-mlp --optimizer adam --batch-size 100
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from sslkit.build import cpu_has_bfloat16
from sslkit.config import parse_assignments
from sslkit.engine.loop import prepare_model
from sslkit.interfaces import Batch, DataInfo, Split
from sslkit.registry import load_registry


def as_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255).round().to(torch.uint8)


def images_per_second(pretext, optimizers, batch: Batch, steps: int, warmup: int) -> float:
    labeled = None if batch.labels is None else Split(as_uint8(batch.labeled_images), batch.labels)
    pretext.prepare(as_uint8(batch.images), labeled)  # the batch is the whole data (fixmatch's graph prior)
    for _ in range(warmup):
        pretext.train_step(batch, optimizers, pretext)
    start = time.perf_counter()
    for _ in range(steps):
        pretext.train_step(batch, optimizers, pretext)
    return steps * len(batch.images) / (time.perf_counter() - start)


def build(registry, args, info):
    torch.manual_seed(0)
    recipe = getattr(registry.get("pretext", args.pretext).component.factory, "defaults", {})
    name = args.encoder or recipe.get("encoder", "convnet")
    options = {
        **({} if args.encoder else recipe.get("encoder_options", {})),
        **parse_assignments(args.encoder_opt, "--encoder-opt"),
    }
    encoder = registry.build("encoder", name, info.in_chans, info.image_size, options=options)
    pretext = registry.build("pretext", args.pretext, encoder, info)
    return pretext, pretext.make_optimizers(0.01, 5e-4 if args.optimizer == "sgd" else 0.0, args.optimizer)


def unfused(optimizers: list[torch.optim.Optimizer]) -> list[torch.optim.Optimizer]:
    """The same optimizers as PyTorch's per-parameter loop (its default on CPU)."""
    return [
        type(o)(o.param_groups[0]["params"], **{**o.defaults, "fused": None, "foreach": False})
        for o in optimizers
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pretext", default="rotation")
    parser.add_argument("--encoder", help="default: the pretext's recipe, else convnet")
    parser.add_argument("--encoder-opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="sgd")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to warm up)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = load_registry()
    info = DataInfo("28x28 gray", [str(i) for i in range(10)], 1, 28, (0.5,), (0.5,))
    batch = Batch(torch.rand(args.batch_size, 1, 28, 28), index=torch.arange(args.batch_size))

    rows = []
    pretext, opts = build(registry, args, info)
    if pretext.uses_labels:  # semi-supervised: a labeled batch beside the pool batch
        n = pretext.labeled_batch_size(args.batch_size)
        batch = dataclasses.replace(
            batch, labeled_images=torch.rand(n, 1, 28, 28), labels=torch.arange(n) % 10
        )
    eager = images_per_second(pretext, unfused(opts), batch, args.steps, 3)
    rows.append(("eager (contiguous), loop", eager))
    pretext, opts = build(registry, args, info)
    prepare_model(pretext, torch.device("cpu"), compile=False)
    rows.append(("channels_last, loop", images_per_second(pretext, unfused(opts), batch, args.steps, 3)))
    pretext, opts = build(registry, args, info)
    prepare_model(pretext, torch.device("cpu"), compile=False)
    rows.append(("channels_last, fused", images_per_second(pretext, opts, batch, args.steps, 3)))
    if cpu_has_bfloat16():  # what a run does by default on such a CPU (--no-amp: the row above)
        pretext, opts = build(registry, args, info)
        prepare_model(pretext, torch.device("cpu"), compile=False)
        bf16 = dataclasses.replace(batch, amp=torch.bfloat16)
        rows.append(("+ bfloat16 autocast", images_per_second(pretext, opts, bf16, args.steps, 3)))
    if args.compile:
        pretext, opts = build(registry, args, info)
        prepare_model(pretext, torch.device("cpu"), compile=True)
        rows.append(("fused + compile", images_per_second(pretext, opts, batch, args.steps, 3)))
    labeled = len(batch.labeled_images) if batch.labeled_images is not None else 0
    encoder_opts = "".join(f" --encoder-opt {o}" for o in args.encoder_opt)
    print(
        f"{args.pretext} on {args.encoder or 'its recipe encoder'}{encoder_opts}, batch {args.batch_size} "
        f"(+{labeled} labeled), {args.threads} threads, 28x28x1"
    )
    for name, ips in rows:
        print(
            f"  {name:26s} {ips:8.0f} pool images/s  {ips / args.batch_size:6.2f} steps/s   x{ips / eager:.2f}"
        )
    print(
        "reproduce: python benchmarks/model_step.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if not isinstance(v, (bool, list)) and v is not None
        )
        + encoder_opts
        + (" --compile" if args.compile else "")
    )


if __name__ == "__main__":
    main()
