"""STL-10 from torchvision's layout: ``ROOT/stl10_binary/{train,test}_{X,y}.bin, unlabeled_X.bin, class_names.txt``.

Images are raw uint8, 3 x 96 x 96 each, every channel stored column-major (as MATLAB wrote it): torchvision reads
``(N, 3, 96, 96)`` and swaps the last two axes, and so do we. Labels are bytes 1..10, made 0..9. The 100,000
unlabeled images (2.8 GB) become the bundle's ``unlabeled`` pool unless ``unlabeled=false``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit_builtins.datasets.common import channel_stats, check_labels, check_md5, ensure_files

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE
CHUNK = 4096  # images transposed at a time, so the 2.8 GB unlabeled file is never held twice


def read_images(path: Path) -> Tensor:
    """``(N, 3, 96, 96)`` uint8 from a raw ``*_X.bin`` file whose size must be a whole number of images."""
    size = path.stat().st_size
    if size == 0 or size % IMAGE_BYTES:
        raise UsageError(
            f"{path} is truncated or corrupt ({size} bytes, not a multiple of {IMAGE_BYTES} per image); "
            "delete it and download it again"
        )
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // IMAGE_BYTES, 3, SIDE, SIDE))
    out = torch.empty(raw.shape, dtype=torch.uint8)
    for start in range(0, len(raw), CHUNK):
        chunk = torch.from_numpy(np.array(raw[start : start + CHUNK]))  # a copy: the map is read-only
        out[start : start + CHUNK] = chunk.transpose(2, 3)  # column-major -> row-major
    del raw
    return out


def read_labels(path: Path, n_images: int) -> Tensor:
    """Labels 1..10 stored one byte each, returned as 0..9; their count must match the images."""
    raw = np.fromfile(path, dtype=np.uint8)
    if len(raw) != n_images:
        raise UsageError(
            f"{path} holds {len(raw)} labels for {n_images} images; it is truncated or corrupt: "
            "delete it and download it again"
        )
    labels = torch.from_numpy(raw.astype(np.int64)) - 1
    check_labels(path, labels, 10)
    return labels


def load(root: Path, download: bool, unlabeled: bool = True, verify: bool = True) -> DatasetBundle:
    import torchvision.datasets as tvd

    folder = root / tvd.STL10.base_folder
    sums = dict(tvd.STL10.train_list + tvd.STL10.test_list)
    files = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", tvd.STL10.class_names_file]
    files += ["unlabeled_X.bin"] if unlabeled else []
    ensure_files("stl10", folder, files, download, lambda: tvd.STL10(str(root), split="train", download=True))
    if verify:
        for file in files:
            check_md5(folder / file, sums.get(file))
    classes = [c.strip() for c in (folder / tvd.STL10.class_names_file).read_text().splitlines() if c.strip()]
    if len(classes) != 10:
        raise UsageError(
            f"{folder / 'class_names.txt'} names {len(classes)} classes, not 10; download it again"
        )
    images = read_images(folder / "train_X.bin")
    train = Split(images, read_labels(folder / "train_y.bin", len(images)))
    images = read_images(folder / "test_X.bin")
    test = Split(images, read_labels(folder / "test_y.bin", len(images)))
    pool = read_images(folder / "unlabeled_X.bin") if unlabeled else None
    mean, std = channel_stats(train.images if pool is None else torch.cat([train.images, pool[:5000]]))
    return DatasetBundle(DataInfo("stl10", classes, 3, SIDE, mean, std, flips=True), train, test, pool)


@hookimpl
def sslkit_datasets() -> list[Component]:
    return [
        Component(
            "stl10",
            load,
            "STL-10, 5k/8k 96x96 RGB labeled + 100k unlabeled, 10 classes",
        )
    ]
