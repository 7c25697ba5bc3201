"""CIFAR-10 and CIFAR-100 from torchvision's layout: the python pickled batches.

``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``ROOT/cifar-100-python/{train, test, meta}`` (fine labels). Each batch is a dict with ``b'data'`` (N, 3072)
uint8, rows of 1024 red, then green, then blue pixels in row-major order, and ``b'labels'`` or
``b'fine_labels'``. Files are checked against torchvision's md5 sums unless ``verify=false``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit_builtins.datasets.common import channel_stats, check_labels, check_md5, ensure_files


def read_pickle(path: Path) -> dict[bytes, Any]:
    """One pickled batch or meta file, with its keys as bytes (``b'data'``), as the files were written."""
    try:
        with path.open("rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as exc:
        raise UsageError(
            f"{path} is truncated or not a CIFAR pickle ({type(exc).__name__}); delete it and download it again"
        ) from None
    if not isinstance(obj, dict):
        raise UsageError(
            f"{path} holds a {type(obj).__name__}, not a CIFAR batch dict; delete it and download again"
        )
    return obj


def read_batch(path: Path, label_key: bytes, num_classes: int) -> Split:
    batch = read_pickle(path)
    if b"data" not in batch or label_key not in batch:
        raise UsageError(
            f"{path} lacks the keys b'data' and {label_key!r}; it is not a CIFAR batch: delete it and download again"
        )
    data = np.asarray(batch[b"data"])
    labels = torch.as_tensor(np.asarray(batch[label_key]), dtype=torch.int64).flatten()
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise UsageError(
            f"{path} has data {data.dtype} {data.shape} and {len(labels)} labels; expected uint8 (N, 3072) and "
            "N labels: delete it and download it again"
        )
    check_labels(path, labels, num_classes)
    return Split(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels)


def _load(name: str, tv_class: str, root: Path, download: bool, verify: bool) -> DatasetBundle:
    import torchvision.datasets as tvd

    tv = getattr(tvd, tv_class)
    folder = root / tv.base_folder
    train_files, test_files = [f for f, _ in tv.train_list], [f for f, _ in tv.test_list]
    meta_file = tv.meta["filename"]
    ensure_files(
        name,
        folder,
        [*train_files, *test_files, meta_file],
        download,
        lambda: tv(str(root), train=True, download=True),
    )
    if verify:
        for file, md5 in [*tv.train_list, *tv.test_list, (meta_file, tv.meta["md5"])]:
            check_md5(folder / file, md5)
    meta = read_pickle(folder / meta_file)
    key = tv.meta["key"].encode()
    if key not in meta:
        raise UsageError(f"{folder / meta_file} lacks the key {key!r}; delete it and download it again")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[key]]
    label_key = b"labels" if tv_class == "CIFAR10" else b"fine_labels"
    parts = [read_batch(folder / f, label_key, len(classes)) for f in train_files]
    train = Split(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
    tests = [read_batch(folder / f, label_key, len(classes)) for f in test_files]
    test = Split(torch.cat([p.images for p in tests]), torch.cat([p.labels for p in tests]))
    mean, std = channel_stats(train.images)
    return DatasetBundle(DataInfo(name, classes, 3, 32, mean, std, flips=True), train, test)


def load_cifar10(root: Path, download: bool, verify: bool = True) -> DatasetBundle:
    return _load("cifar10", "CIFAR10", root, download, verify)


def load_cifar100(root: Path, download: bool, verify: bool = True) -> DatasetBundle:
    return _load("cifar100", "CIFAR100", root, download, verify)


@hookimpl
def sslkit_datasets() -> list[Component]:
    return [
        Component("cifar10", load_cifar10, "CIFAR-10 objects, 50k/10k 32x32 RGB, 10 classes"),
        Component("cifar100", load_cifar100, "CIFAR-100 objects, 50k/10k 32x32 RGB, 100 fine classes"),
    ]
