"""Throughput of sslkit's batched augmentations on 32x32 RGB batches against the same augmentations done per sample
with torchvision.transforms.v2 in a DataLoader.

Data: random uint8 images of CIFAR's shape (3x32x32); the transforms' cost hardly depends on the content.

* ``--recipe simclr``: random resized crop (scale 0.2-1, ratio 3/4-4/3), horizontal flip, colour jitter
  (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale with p 0.2, conversion to float in [0, 1]; two views per image.
* ``--recipe randaugment``: FixMatch's strong view, two RandAugment ops per image with random magnitudes, then a
  16x16 cutout; one view per image (torchvision: ``RandAugment(num_ops=2)`` + ``RandomErasing`` of a square
  quarter of the image).

    OMP_NUM_THREADS=2 python benchmarks/augment_throughput.py                       # CPU, 2 threads vs 2 workers
    OMP_NUM_THREADS=2 python benchmarks/augment_throughput.py --recipe randaugment
    python benchmarks/augment_throughput.py --device cuda                           # batched on the GPU
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset

from sslkit.data.augment import rand_augment, simclr_view


def torchvision_transform(recipe: str):
    from torchvision.transforms import v2

    if recipe == "simclr":
        return v2.Compose(
            [
                v2.RandomResizedCrop(32, scale=(0.2, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                v2.RandomGrayscale(p=0.2),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )
    return v2.Compose(
        [
            v2.RandAugment(num_ops=2),
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0),
        ]
    )


VIEWS = {"simclr": 2, "randaugment": 1}


class Views(Dataset):
    """Per-sample torchvision v2 pipeline, ``views`` views of each uint8 image."""

    def __init__(self, images: torch.Tensor, recipe: str) -> None:
        self.images, self.transform, self.views = images, torchvision_transform(recipe), VIEWS[recipe]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        return [self.transform(self.images[i]) for _ in range(self.views)]


def bench_batched(
    images: torch.Tensor, batch_size: int, device: torch.device, seconds: float, recipe: str
) -> float:
    images = images.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)

    def step(start: int) -> None:
        x = images[start : start + batch_size].float().div_(255)
        if recipe == "simclr":
            simclr_view(x, generator=gen), simclr_view(x, generator=gen)
        else:
            rand_augment(x, cutout_size=16, generator=gen)

    for s in range(0, 3 * batch_size, batch_size):  # warm-up
        step(s % len(images))
    sync()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        start = (done % len(images)) // batch_size * batch_size
        step(start)
        done += batch_size
    sync()
    return done / (time.perf_counter() - t0)


def bench_torchvision(
    images: torch.Tensor, batch_size: int, workers: int, seconds: float, recipe: str
) -> float:
    loader = DataLoader(
        Views(images, recipe),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    it = iter(loader)
    next(it)  # workers started and warm
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            a = next(it)[0]
        except StopIteration:
            it = iter(loader)
            continue
        done += len(a)
    return done / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=8192, help="dataset size (random uint8 3x32x32)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=2, help="torch threads for the batched path")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for the torchvision path")
    p.add_argument("--seconds", type=float, default=15.0, help="timed seconds per side")
    p.add_argument("--device", default="cpu", help="device for the batched path (cpu or cuda)")
    p.add_argument("--recipe", choices=sorted(VIEWS), default="simclr")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    images = torch.randint(
        0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    device = torch.device(args.device)
    batched = bench_batched(images, args.batch_size, device, args.seconds, args.recipe)
    per_sample = bench_torchvision(images, args.batch_size, args.workers, args.seconds, args.recipe)
    cmd = " ".join(["python", *sys.argv])
    print(f"command: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} {cmd}")
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs visible, batch {args.batch_size}, "
        f"{VIEWS[args.recipe]} view(s) per image"
    )
    print(f"sslkit {args.recipe}, batched on {device} ({args.threads} threads): {batched:12,.0f} images/s")
    print(f"torchvision v2 per sample, DataLoader {args.workers} workers:  {per_sample:12,.0f} images/s")
    print(f"ratio: {batched / per_sample:.1f}x")


if __name__ == "__main__":
    main()
