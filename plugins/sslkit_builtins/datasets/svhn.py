"""SVHN from torchvision's layout: ``ROOT/svhn/{train,test,extra}_32x32.mat`` (MATLAB v5 files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit_builtins.datasets.common import as_labels, channel_stats, guarded_download, missing


def read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """X is (32, 32, 3, N) uint8 and y is (N, 1) with 10 standing for the digit 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
        x, y = mat["X"], mat["y"]
    except Exception as exc:
        raise UsageError(
            f"{path} is not a readable SVHN .mat file ({type(exc).__name__}); delete it and download again"
        ) from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise UsageError(
            f"{path} has X of shape {x.shape} and {len(y)} labels; expected (32, 32, 3, N) and N"
        )
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1))).to(torch.uint8)
    labels = as_labels(y) % 10
    return images, labels


def load(root: Path, download: bool, extra: bool = False) -> DatasetBundle:
    folder = root / "svhn"
    splits = ["train", "test"] + (["extra"] if extra else [])
    for split in splits:
        if not (folder / f"{split}_32x32.mat").exists():
            if not download:
                raise missing("svhn", folder, download, f"no {split}_32x32.mat")
            import torchvision.datasets as tvd

            guarded_download("svhn", folder, lambda s=split: tvd.SVHN(str(folder), split=s, download=True))
    train = Split(*read_mat(folder / "train_32x32.mat"))
    test = Split(*read_mat(folder / "test_32x32.mat"))
    unlabeled = read_mat(folder / "extra_32x32.mat")[0] if extra else None
    mean, std = channel_stats(train.images)
    info = DataInfo("svhn", [str(d) for d in range(10)], 3, 32, mean, std, flips=False)
    return DatasetBundle(info, train, test, unlabeled)


@hookimpl
def sslkit_datasets() -> list[Component]:
    return [
        Component(
            "svhn", load, "SVHN house numbers, 73k/26k 32x32 RGB (+531k extra as unlabeled)", {"extra": False}
        )
    ]
