"""Helpers shared by the dataset providers: statistics, clear errors, guarded downloads."""

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
