"""SVHN from torchvision's layout: ``ROOT/svhn/{train,test,extra}_32x32.mat`` (MATLAB v5 files).

``extra=true`` adds the 531k-image ``extra`` split, without its labels, to the unlabeled pretraining pool.
Files are checked against torchvision's md5 sums unless ``verify=false``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit_builtins.datasets.common import as_labels, channel_stats, check_md5, ensure_files


def read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """X is (32, 32, 3, N) uint8 (row, column, channel, image) and y is (N, 1) in 1..10, 10 standing for the
    digit 0. Returns ``(N, 3, 32, 32)`` images and labels 0..9."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
        x, y = mat["X"], mat["y"]
    except Exception as exc:
        raise UsageError(
            f"{path} is truncated or not a readable SVHN .mat file ({type(exc).__name__}); "
            "delete it and download it again"
        ) from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise UsageError(
            f"{path} has X {x.dtype} {x.shape} and {len(y)} labels; expected uint8 (32, 32, 3, N) and N labels"
        )
    labels = as_labels(y)
    if len(labels) and (int(labels.min()) < 1 or int(labels.max()) > 10):
        raise UsageError(f"{path} holds labels outside 1..10; it is corrupt: delete it and download it again")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return images, labels % 10


def load(root: Path, download: bool, extra: bool = False, verify: bool = True) -> DatasetBundle:
    import torchvision.datasets as tvd

    folder = root / "svhn"
    for split in ["train", "test"] + (["extra"] if extra else []):
        _, file, md5 = tvd.SVHN.split_list[split]
        ensure_files(
            "svhn", folder, [file], download, lambda s=split: tvd.SVHN(str(folder), split=s, download=True)
        )
        if verify:
            check_md5(folder / file, md5)
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
            "svhn",
            load,
            "SVHN house numbers, 73k/26k 32x32 RGB (extra=true: +531k unlabeled)",
        )
    ]
