"""Helpers shared by the dataset providers: statistics, clear errors, guarded downloads, and image files
decoded once into a cached uint8 tensor."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
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

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def _file_key(files: list[Path], base: Path, size: int, mode: str) -> str:
    """What a cache must match: every file's path (relative to ``base``, so a moved dataset keeps its cache),
    size and modification time, the side and the mode."""
    h = hashlib.sha256(f"{size}:{mode}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{os.path.relpath(f, base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def decode_image(path: Path, size: int, mode: str) -> np.ndarray:
    """One image file -> uint8 ``(C, size, size)``: decoded with PIL (JPEGs at a reduced scale where that is
    enough), converted to ``mode`` ("RGB" or "L") and resized to a square with antialiasing."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.draft(mode, (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale when still >= size
            img = img.convert(mode).resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    except Exception as exc:
        raise UsageError(
            f"cannot decode image {path} ({type(exc).__name__}: {str(exc)[:80]}); delete or replace the file"
        ) from None
    array = np.array(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def is_grayscale(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode in ("1", "L", "LA", "I", "I;16", "F")
    except Exception as exc:
        raise UsageError(
            f"cannot decode image {path} ({type(exc).__name__}: {str(exc)[:80]}); delete or replace the file"
        ) from None


def load_images(files: list[Path], size: int, mode: str, cache: Path, what: str = "images") -> Tensor:
    """Decode and resize ``files`` into one uint8 tensor ``(N, C, size, size)``, cached in ``cache`` (a
    ``.pt`` file next to the data). The cache is used only if it was made from the same files (paths, sizes,
    modification times), side and mode; a folder that cannot be written to is simply not cached into."""
    key = _file_key(files, cache.parent, size, mode)
    if cache.exists():
        try:
            saved = torch.load(cache, weights_only=True)
            if saved.get("key") == key:
                return saved["images"]
        except Exception:
            pass  # damaged or foreign: decode again
    from concurrent.futures import ThreadPoolExecutor

    from sslkit.report.progress import console

    channels = 1 if mode == "L" else 3
    out = torch.empty(len(files), channels, size, size, dtype=torch.uint8)
    workers = min(8, os.cpu_count() or 1)  # PIL decodes without holding the GIL
    status = console.status(f"decoding {len(files)} {what} to {size}x{size} (cached afterwards)")
    with ThreadPoolExecutor(max_workers=workers) as pool, status:
        for i, array in enumerate(pool.map(lambda f: decode_image(f, size, mode), files)):
            out[i] = torch.from_numpy(array)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        torch.save({"key": key, "images": out}, tmp)
        os.replace(tmp, cache)
    except OSError:
        pass
    return out


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
