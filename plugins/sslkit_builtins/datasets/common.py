"""Helpers shared by the dataset providers: statistics, clear errors and guarded downloads. Image files are
decoded by :mod:`sslkit.data.images`."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from sslkit import UsageError


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 ``(N, C, H, W)`` images, on the [0, 1] scale."""
    sample = images[:: max(1, len(images) // 10_000)].float().div_(255)
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def missing(name: str, path: Path, download: bool, reason: str = "") -> UsageError:
    how = "pass --data-root DIR pointing at a copy" + (
        "" if download else ", or drop --no-download to fetch it"
    )
    why = f" ({reason})" if reason else ""
    return UsageError(f"dataset {name} not found under {path}{why}; {how}")


def guarded_download(name: str, path: Path, fetch: Callable[[], object], timeout: float = 30.0) -> None:
    """Run a torchvision download with a socket timeout; any failure becomes one line naming the path."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        fetch()
    except Exception as exc:
        raise missing(name, path, True, f"download failed: {type(exc).__name__}: {str(exc)[:120]}") from None
    finally:
        socket.setdefaulttimeout(old)


def as_labels(values: object) -> Tensor:
    return torch.as_tensor(values, dtype=torch.int64).flatten()


# ------------------------------------------------------------------------------ image files on disk


def check_md5(path: Path, md5: str | None) -> None:
    """Compare ``path`` with torchvision's recorded md5; a mismatch is one line naming the file."""
    from torchvision.datasets.utils import check_integrity

    if md5 and not check_integrity(str(path), md5):
        raise UsageError(
            f"{path} fails its md5 check (expected {md5}): it is truncated, corrupt or not the official file; "
            "delete it and run again to download it, or pass --data-opt verify=false for a copy you made"
        )


def ensure_files(
    name: str, folder: Path, files: list[str], download: bool, fetch: Callable[[], object]
) -> None:
    """Make sure every file in ``files`` exists under ``folder``: download them with ``fetch`` when allowed,
    else (or if the download leaves one missing) one line naming the folder and the first missing file."""
    absent = [f for f in files if not (folder / f).is_file()]
    if not absent:
        return
    if not download:
        raise missing(name, folder, download, f"no {absent[0]}")
    guarded_download(name, folder, fetch)
    absent = [f for f in files if not (folder / f).is_file()]
    if absent:
        raise missing(name, folder, download, f"no {absent[0]} after the download")


def check_labels(path: Path, labels: Tensor, num_classes: int) -> None:
    """Labels must lie in ``0..num_classes-1``; anything else means a corrupt or foreign file."""
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise UsageError(
            f"{path} holds labels outside 0..{num_classes - 1} (found {int(labels.min())}..{int(labels.max())}); "
            "it is corrupt or not the official file: delete it and download it again"
        )
