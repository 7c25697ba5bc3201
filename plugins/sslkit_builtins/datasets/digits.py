"""scikit-learn's bundled 8x8 handwritten digits: the offline quick start (no download, ever)."""

from __future__ import annotations

from pathlib import Path

import torch

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit_builtins.datasets.common import channel_stats


def load(root: Path, download: bool, test_size: int = 497) -> DatasetBundle:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.from_numpy(data.images * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(data.target).long()
    if not 10 <= test_size <= len(images) - 100:
        raise UsageError(
            f"digits option test_size must be between 10 and {len(images) - 100}, got {test_size}"
        )
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(1797))  # a fixed split
    test_idx, train_idx = order[:test_size].sort().values, order[test_size:].sort().values
    train = Split(images[train_idx], labels[train_idx])
    mean, std = channel_stats(train.images)
    info = DataInfo("digits", [str(d) for d in range(10)], 1, 8, mean, std, flips=False)
    return DatasetBundle(info, train, Split(images[test_idx], labels[test_idx]))


@hookimpl
def sslkit_datasets() -> list[Component]:
    return [
        Component(
            "digits",
            load,
            "scikit-learn's bundled 8x8 digits (1,797 images), offline quick start",
        )
    ]
