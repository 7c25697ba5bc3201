"""Decoding a folder of image files into the run's uint8 tensor: sslkit.data.images.load_images (worker processes,
then its cache) against a plain one-process PIL loop.

Data: the first N Fashion-MNIST training images (28x28 grey, read with torchvision from ``$SSLKIT_DATA`` or
``../shared/data``, never downloaded), upscaled with bicubic to ``--file-size`` px (default 64), converted to RGB
and written as JPEG (quality 90) into a temporary folder: a small-photo folder. All three sides decode them to
``--size`` px RGB squares (default 64):

* (a) plain loop: one process, ``Image.open(f).convert("RGB").resize((size, size), BICUBIC)`` -> ``np.array``;
* (b) ``load_images`` in one process, no cache (its per-file work against the plain loop's);
* (c) ``load_images`` with ``--workers`` processes (default: every CPU), no cache: the decoding speed-up;
* (d) the same with its cache file written (what a first run does);
* (e) ``load_images`` again: a cache hit.

    python benchmarks/folder_decode.py                      # 20,000 files
    python benchmarks/folder_decode.py --n 500 --workers 2  # a quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def data_root() -> Path:
    if os.environ.get("SSLKIT_DATA"):
        return Path(os.environ["SSLKIT_DATA"]).expanduser()
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_folder(folder: Path, n: int, file_size: int) -> list[Path]:
    """N JPEGs of Fashion-MNIST images, upscaled to ``file_size`` px RGB, 1,000 per sub-folder."""
    from PIL import Image
    from torchvision.datasets import FashionMNIST

    root = data_root()
    try:
        source = FashionMNIST(str(root), train=True, download=False).data.numpy()
    except RuntimeError as exc:
        sys.exit(
            f"Fashion-MNIST not found under {root} ({exc}); set SSLKIT_DATA to a folder holding FashionMNIST/raw"
        )
    files = []
    for i in range(n):
        path = folder / f"{i // 1000:03d}" / f"{i:06d}.jpg"
        path.parent.mkdir(exist_ok=True)
        img = Image.fromarray(source[i % len(source)]).resize(
            (file_size, file_size), Image.Resampling.BICUBIC
        )
        img.convert("RGB").save(path, quality=90)
        files.append(path)
    return files


def plain_loop(files: list[Path], size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as img:
            out[i] = np.array(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)).transpose(
                2, 0, 1
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="image files written and decoded (default 20,000)")
    p.add_argument(
        "--file-size", type=int, default=64, help="side of the JPEG files written, px (default 64)"
    )
    p.add_argument("--size", type=int, default=64, help="side they are decoded to, px (default 64)")
    p.add_argument(
        "--workers", type=int, default=None, help="load_images worker processes (default: every CPU)"
    )
    args = p.parse_args()

    import torch
    from PIL import __version__ as pil_version

    from sslkit.data.images import default_workers, load_images

    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="sslkit-folder-decode-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        t0 = time.perf_counter()
        files = write_folder(folder, args.n, args.file_size)
        written = time.perf_counter() - t0

        t0 = time.perf_counter()
        reference = plain_loop(files, args.size)
        plain = time.perf_counter() - t0

        timed = {}
        for name, n_workers in (("one", 1), ("pool", workers)):
            t0 = time.perf_counter()
            load_images(files, args.size, "RGB", None, "benchmark images", workers=n_workers)
            timed[name] = time.perf_counter() - t0

        cache = folder / ".sslkit-cache" / f"bench-{args.size}-RGB.pt"
        t0 = time.perf_counter()
        ours, skipped = load_images(files, args.size, "RGB", cache, "benchmark images", workers=workers)
        pooled = time.perf_counter() - t0

        t0 = time.perf_counter()
        again, _ = load_images(files, args.size, "RGB", cache, "benchmark images", workers=workers)
        cached = time.perf_counter() - t0

    assert not skipped and torch.equal(ours, again)
    diff = int((ours.numpy().astype(int) - reference.astype(int)).__abs__().max())
    print(f"command: {' '.join(['python', *sys.argv])}")
    print(
        f"{args.n:,} JPEG files of {args.file_size}x{args.file_size} RGB (Fashion-MNIST, upscaled), decoded to "
        f"{args.size}x{args.size} RGB; {os.cpu_count()} CPUs visible, Pillow {pil_version}; written in {written:.1f} s"
    )
    rate = lambda s: args.n / max(s, 1e-9)  # noqa: E731
    rows = [
        ("(a) plain PIL loop, 1 process", plain),
        ("(b) load_images, 1 process", timed["one"]),
        (f"(c) load_images, {workers} processes", timed["pool"]),
        (f"(d) load_images, {workers} processes + cache", pooled),
        ("(e) load_images again, cache hit", cached),
    ]
    for name, seconds in rows:
        print(f"{name:<40} {rate(seconds):10,.0f} images/s  ({seconds:.2f} s)")
    print(
        f"decoding (c)/(a): {plain / timed['pool']:.2f}x, with the cache written (d)/(a): {plain / pooled:.2f}x; "
        f"largest pixel difference (d) vs (a): {diff}"
    )


if __name__ == "__main__":
    main()
