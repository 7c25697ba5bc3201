"""SimCLR end to end on Fashion-MNIST: sslkit against the way lightly's documentation trains it.

Same encoder (the reference convnet), same projection head shape (512 hidden, 128 out), same NT-Xent
(temperature 0.5), batch 256 pairs, AdamW, CPU threads fixed. Four rows, all in this process:

* lightly: SimCLRTransform per sample (PIL) in a DataLoader with 2 workers, SimCLRProjectionHead, NTXentLoss,
  plain eager PyTorch (the documented recipe; blur off and the input size 28 to match sslkit's views);
* lightly model on pre-made tensors: the same model step with no data loading at all (its ceiling);
* sslkit model only, eager: sslkit's SimCLR step on pre-made views, contiguous layout (the baseline for the
  model-step speed-up);
* sslkit end to end: the `simclr` pretext as the engine runs it (uint8 tensors, both views made for the whole batch,
  channels_last).

    python benchmarks/simclr_vs_lightly.py --threads 2 --steps 12
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from torch import nn

from sslkit.data import default_data_root
from sslkit.engine.loop import prepare_model
from sslkit.interfaces import Batch, make_optimizer
from sslkit.registry import load_registry


def pairs_per_second(step, steps: int, batch: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def lightly_rows(images: torch.Tensor, encoder: nn.Module, args) -> tuple[float, float]:
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    transform = SimCLRTransform(
        input_size=28, gaussian_blur=0.0, min_scale=0.2, normalize={"mean": [0.286], "std": [0.353]}
    )

    class Pairs(Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, i: int):
            return tuple(transform(Image.fromarray(images[i, 0].numpy(), mode="L")))

    loader = DataLoader(
        Pairs(),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=2,
        drop_last=True,
        persistent_workers=True,
    )
    model = nn.Sequential(encoder, SimCLRProjectionHead(encoder.feature_dim, 512, 128))
    criterion = NTXentLoss(temperature=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = itertools.cycle(loader)

    def train(x0: torch.Tensor, x1: torch.Tensor) -> None:
        loss = criterion(model(x0), model(x1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    def step_loaded() -> None:
        x0, x1 = next(batches)
        train(x0, x1)

    end_to_end = pairs_per_second(step_loaded, args.steps, args.batch_size)
    x0, x1 = next(batches)
    model_only = pairs_per_second(lambda: train(x0, x1), args.steps, args.batch_size)
    return end_to_end, model_only


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = load_registry()
    data = registry.build("dataset", "fashion-mnist", default_data_root(), False)
    images = data.train.images[:20_000]

    def fresh_simclr():
        torch.manual_seed(0)
        encoder = registry.build("encoder", "convnet", 1, 28)
        pretext = registry.build("pretext", "simclr", encoder, data.info)
        return pretext, [make_optimizer(pretext.parameters(), "adamw", 1e-3, 1e-4)]

    # sslkit end to end: uint8 pool -> float batch -> batched views -> channels_last model
    pretext, opts = fresh_simclr()
    prepare_model(pretext, torch.device("cpu"))
    order = torch.randperm(len(images))
    cursor = itertools.count()

    def sslkit_step() -> None:
        start = next(cursor) * args.batch_size % (len(images) - args.batch_size)
        x = images[order[start : start + args.batch_size]].float().div_(255)
        pretext.train_step(Batch(x), opts, pretext)

    ours = pairs_per_second(sslkit_step, args.steps, args.batch_size)

    # sslkit model only, plain eager (contiguous) on pre-made views
    pretext, opts = fresh_simclr()
    x = images[: args.batch_size].float().div_(255)
    views = pretext.views(x)
    pretext.views = lambda _: views
    eager = pairs_per_second(lambda: pretext.train_step(Batch(x), opts, pretext), args.steps, args.batch_size)
    # the same pre-made views, channels_last: the model-step speed-up alone
    prepare_model(pretext, torch.device("cpu"))
    fast = pairs_per_second(lambda: pretext.train_step(Batch(x), opts, pretext), args.steps, args.batch_size)

    torch.manual_seed(0)
    lightly_e2e, lightly_model = lightly_rows(images, registry.build("encoder", "convnet", 1, 28), args)

    print(f"SimCLR, convnet, Fashion-MNIST 28x28, batch {args.batch_size} pairs, {args.threads} threads")
    rows = [
        ("lightly, documented (SimCLRTransform, 2 workers)", lightly_e2e),
        ("lightly model on pre-made tensors", lightly_model),
        ("sslkit model only, eager contiguous", eager),
        ("sslkit model only, channels_last", fast),
        ("sslkit end to end", ours),
    ]
    for name, value in rows:
        print(f"  {name:50s} {value:7.1f} pairs/s   x{value / lightly_e2e:.2f} vs lightly")
    print(f"model-step speed-up over plain eager PyTorch: x{fast / eager:.2f}")
    print(
        f"reproduce: python benchmarks/simclr_vs_lightly.py --threads {args.threads} --steps {args.steps} "
        f"--batch-size {args.batch_size}"
    )


if __name__ == "__main__":
    main()
