"""MNIST and Fashion-MNIST from torchvision's on-disk layout: ``ROOT/MNIST/raw/*-idx?-ubyte[.gz]``."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit_builtins.datasets.common import channel_stats, guarded_download, missing

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def read_idx(path: Path) -> Tensor:
    """Parse an idx file (optionally gzipped), checking its header against its size."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise UsageError(
            f"{path} is truncated or not gzip data ({type(exc).__name__}); delete it and download it again"
        ) from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UsageError(f"{path} is not an idx file of unsigned bytes; delete it and download it again")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(shape))
    if len(raw) != expected:
        raise UsageError(
            f"{path} is truncated or corrupt ({len(raw)} bytes, its header says {expected}); delete it and download it again"
        )
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy())


def _find(raw_dir: Path, stem: str) -> Path | None:
    for candidate in (raw_dir / stem, raw_dir / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _load(
    name: str, folder: str, classes: list[str], root: Path, download: bool, tv_class: str
) -> DatasetBundle:
    raw_dir = root / folder / "raw"
    if any(_find(raw_dir, stem) is None for stem in FILES.values()):
        if not download:
            raise missing(name, raw_dir, download)
        import torchvision.datasets as tvd

        guarded_download(name, raw_dir, lambda: getattr(tvd, tv_class)(str(root), train=True, download=True))
    paths = {key: _find(raw_dir, stem) for key, stem in FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}  # type: ignore[arg-type]
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UsageError(
                f"{paths[split + '_images']} ({tuple(images.shape)}) and {paths[split + '_labels']} "
                f"({tuple(labels.shape)}) do not pair up as N images and N labels; delete them and download again"
            )
    train = Split(arrays["train_images"].unsqueeze(1), arrays["train_labels"].long())
    test = Split(arrays["test_images"].unsqueeze(1), arrays["test_labels"].long())
    mean, std = channel_stats(train.images)
    info = DataInfo(name, classes, 1, 28, mean, std, flips=False)
    return DatasetBundle(info, train, test)


def load_mnist(root: Path, download: bool) -> DatasetBundle:
    return _load("mnist", "MNIST", [str(d) for d in range(10)], root, download, "MNIST")


def load_fashion_mnist(root: Path, download: bool) -> DatasetBundle:
    bundle = _load("fashion-mnist", "FashionMNIST", FASHION_CLASSES, root, download, "FashionMNIST")
    bundle.info.flips = True  # clothing is left-right symmetric in meaning
    return bundle


@hookimpl
def sslkit_datasets() -> list[Component]:
    return [
        Component("mnist", load_mnist, "MNIST handwritten digits, 60k/10k 28x28 grayscale"),
        Component("fashion-mnist", load_fashion_mnist, "Fashion-MNIST clothing, 60k/10k 28x28 grayscale"),
    ]
