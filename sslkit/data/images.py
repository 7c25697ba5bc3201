"""Image files -> the run's uint8 ``(N, C, size, size)`` tensor: the one place where sslkit decodes files.

Every file goes through :func:`decode_image`: EXIF orientation applied, converted to 8 bits ("L" or "RGB") from
any PIL mode, transparent pixels composited on **white** (how a transparent PNG looks on a page), resized to a
``size`` x ``size`` square with bicubic antialiasing (the aspect ratio is not kept). Datasets (``imagefolder``,
``voc2007``) and ``sslkit predict`` call it, so a file a run trained on and a file it is asked about later become
the same pixels. :func:`load_images` decodes many files in worker processes and caches the tensor next to the data.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.progress import BarColumn, ProgressColumn, TextColumn
from rich.text import Text
from torch import Tensor

from sslkit.errors import UsageError
from sslkit.util import console, progress_bar

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "IMAGE_SUFFIXES",
    "UnreadableImage",
    "available_memory",
    "check_memory",
    "common_mode",
    "decode_image",
    "default_workers",
    "find_images",
    "image_bytes",
    "is_grayscale",
    "load_images",
]

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
IN_PROCESS_MAX = 64  # fewer files than this decode in the calling process: no pool start-up cost
PROGRESS_MIN = 300  # more files than this show a progress bar (a terminal) or a summary line (a log)
CHUNK = 256  # files per worker task (fewer for short lists, so that every worker gets some)
MEMORY_SHARE = 0.6  # refuse a tensor larger than this share of the available memory

_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class UnreadableImage(Exception):
    """A file PIL cannot decode (corrupt, truncated, not an image, unsupported). ``reason``: ``"Type: message"``."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(path, reason)
        self.path, self.reason = Path(path), reason

    def __str__(self) -> str:
        return f"cannot decode image {self.path} ({self.reason})"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line
    return f"{type(exc).__name__}: {text[:100]}" if text else type(exc).__name__


# ------------------------------------------------------------------------------------------- finding files


def find_images(*paths: Path | str) -> list[Path]:
    """The image files among ``paths``: files as given, folders searched recursively (symlinked folders followed
    once); hidden files and folders (``.name``) below a given folder are left out, and so are files whose suffix
    is not in :data:`IMAGE_SUFFIXES`. Sorted, without duplicates. A path that does not exist is a UsageError."""
    found: dict[tuple[str, str], None] = {}  # (folder, name), in a dict: no duplicates, cheap to sort
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            seen: set[str] = set()
            for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
                real = os.path.realpath(dirpath)
                if real in seen:  # a symlink loop, or the same folder reached twice
                    dirnames[:] = []
                    continue
                seen.add(real)
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                        found[(dirpath, name)] = None
        elif path.is_file():
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found[(os.path.dirname(path), path.name)] = None
        else:
            raise UsageError(f"{path} does not exist; check the path")
    # sorted as Paths sort (part by part), without making 100,000 Paths twice; one Path per folder
    order = sorted(found, key=lambda item: (*item[0].split(os.sep), item[1]))
    folders = {folder: Path(folder) for folder in {folder for folder, _ in order}}
    return [folders[folder] / name for folder, name in order]


# ------------------------------------------------------------------------------------------------ decoding


def _scale_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth pixels -> uint8 by scaling, never clipping. ``I;16*``: 0..65535 -> 0..255. ``I`` (32-bit
    int, how PIL opens some 16-bit files): the same when its values fit 0..65535, else the image's own min..max.
    ``F``: 0..1 -> 0..255 when within 0..1, kept when within 0..255, else the image's own min..max."""
    a = array.astype(np.float32)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and hi <= 65535):
        a = a / 257.0
    elif mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
    elif not (mode == "F" and lo >= 0 and hi <= 255):
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _to_8bit(img: PILImage.Image) -> PILImage.Image:
    """Any PIL mode -> "L" or "RGB", alpha composited on white, palettes expanded to their colours."""
    from PIL import Image

    mode = img.mode
    if mode in ("L", "RGB") and "transparency" not in img.info:
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_scale_to_uint8(np.asarray(img), mode))
    if mode in ("LA", "La", "RGBA", "RGBa", "PA", "P") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        extrema = rgba.getchannel("A").getextrema()
        if extrema[0] == 255:  # opaque after all (a palette without transparency)
            return rgba.convert("L" if mode in ("LA", "La") else "RGB")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("L" if mode in ("LA", "La", "L") else "RGB")
    return img.convert("RGB")  # CMYK (white stays white), YCbCr, LAB, HSV, RGBX


def _plain_jpeg(path: Path | str, size: int, mode: str) -> np.ndarray | None:
    """A JPEG with nothing to rotate (no EXIF or XMP block before its image data) decoded by libjpeg-turbo through
    simplejpeg straight to ``mode``, at the smallest DCT scale still covering ``size`` (as PIL's ``draft``): uint8
    ``(H, W)`` or ``(H, W, 3)``, without PIL's parsing, most of a small photo's decoding time. None for any other
    file (CMYK ones included, and any that simplejpeg refuses), which PIL decodes."""
    if not str(path).lower().endswith((".jpg", ".jpeg", ".jpe", ".jfif")):
        return None
    try:
        import simplejpeg

        with open(path, "rb") as f:
            data = f.read()
        header = data[: data.find(b"\xff\xda")]  # the segments before the scan
        if not data.startswith(b"\xff\xd8") or b"Exif" in header or b"Orientation" in header:
            return None
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace not in ("YCbCr", "Gray"):  # CMYK and YCCK: PIL's conversion, not libjpeg-turbo's
            return None
        scale = next(s for s in (8, 4, 2, 1) if s <= max(1, min(width, height) // size))  # as PIL's draft
        shape = (-(-height // scale), -(-width // scale))
        colorspace = "GRAY" if mode == "L" else "RGB"
        array = simplejpeg.decode_jpeg(data, colorspace=colorspace, min_height=shape[0], min_width=shape[1])
    except (ImportError, OSError, ValueError):
        return None
    if array.shape[:2] != shape:
        return None
    return array[..., 0] if mode == "L" else array


def _pil_decode(path: Path | str, size: int, mode: str) -> PILImage.Image:
    """Any image file through PIL: drafted, EXIF orientation applied, to 8-bit ``mode``."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.draft(mode, (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale when still >= size
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        out = _to_8bit(img)
        return out if out.mode == mode else out.convert(mode)


def decode_image(path: Path | str, size: int, mode: str) -> np.ndarray:
    """One image file -> uint8 ``(C, size, size)``, C = 1 for ``mode`` "L", 3 for "RGB".

    EXIF orientation is applied; JPEGs decode at a reduced scale (1/2, 1/4, 1/8) when that still covers ``size``
    (without metadata through :func:`_plain_jpeg`, else PIL); every PIL mode becomes 8 bits (16-bit and float
    images scaled, not clipped; see :func:`_scale_to_uint8`); transparency is composited on white; "RGB" -> "L"
    uses ITU-R 601 luma; the image is resized to a square with bicubic antialiasing. Raises
    :class:`UnreadableImage` for a file that cannot be decoded."""
    from PIL import Image

    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    try:
        array = _plain_jpeg(path, size, mode)
        if array is None or array.shape[:2] != (size, size):
            picture = _pil_decode(path, size, mode) if array is None else Image.fromarray(array)
            if picture.size != (size, size):
                picture = picture.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
            array = np.array(picture)
    except Exception as exc:
        raise UnreadableImage(path, _reason(exc)) from None
    return np.ascontiguousarray(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))


def is_grayscale(path: Path | str) -> bool:
    """Whether the file holds one channel of intensity (modes 1, L, LA, I, I;16, F, or a palette of greys), read
    from its header without decoding the pixels. Raises :class:`UnreadableImage`."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode in _GRAY_MODES:
                return True
            if img.mode in ("P", "PA"):
                palette = img.getpalette() or []
                return all(
                    palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3)
                )
            return False
    except Exception as exc:
        raise UnreadableImage(path, _reason(exc)) from None


# ------------------------------------------------------------------------------------------------ memory


def image_bytes(n: int, channels: int, size: int) -> int:
    """Bytes of a uint8 ``(n, channels, size, size)`` tensor."""
    return n * channels * size * size


def available_memory() -> int | None:
    """Bytes of memory this process can still take: /proc/meminfo's MemAvailable (else ``os.sysconf``), lowered
    to a cgroup's remaining limit (a container) where there is one; None when nothing says."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        with suppress(AttributeError, ValueError, OSError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:  # cgroup v2
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(found)) if found else None


def check_memory(n: int, channels: int, size: int, what: str) -> None:
    """Refuse up front (a UsageError) a tensor of ``n`` images that would take more than 60% of the available
    memory, instead of decoding for an hour and then being killed."""
    need = image_bytes(n, channels, size)
    avail = available_memory()
    if avail is None or need <= MEMORY_SHARE * avail:
        return
    raise UsageError(
        f"the {what} need {need / 1e9:.1f} GB of memory ({n:,} images x {channels}x{size}x{size} bytes), more than "
        f"{MEMORY_SHARE:.0%} of the {avail / 1e9:.1f} GB available; lower --data-opt image_size or pass "
        "--pool-size N"
    )


# ------------------------------------------------------------------------------------------------- cache


def _file_key(files: list[Path], base: Path, size: int, mode: str) -> str:
    """What a cache must match: every file's path (relative to ``base``, so a moved dataset keeps its cache),
    size and modification time, the side and the mode."""
    h = hashlib.sha256(f"{size}:{mode}".encode())
    folders: dict[str, str] = {}  # os.path.relpath once per folder: it is slow for 100,000 files
    lines = []
    for f in files:
        s = os.fspath(f)
        try:
            st = os.stat(s)
            stamp = f"{st.st_size}\0{st.st_mtime_ns}"
        except OSError:  # a dangling link, a file gone: decoding names it (skipped in a pool, else an error)
            stamp = "missing"
        folder, name = os.path.split(s)
        rel = folders.get(folder)
        if rel is None:
            rel = folders[folder] = os.path.relpath(folder or os.curdir, base)
        lines.append(f"{name if rel == os.curdir else os.path.join(rel, name)}\0{stamp}\n")
    h.update("".join(lines).encode())
    return h.hexdigest()


def _read_cache(cache: Path, key: str, n: int, channels: int, size: int) -> tuple[Tensor, list[int]] | None:
    """The cached tensor and skipped indices when ``cache`` holds a sound entry for ``key``; else None."""
    if not cache.is_file():
        return None
    try:
        saved = torch.load(cache, weights_only=True, map_location="cpu")
        if not isinstance(saved, dict) or saved.get("key") != key:
            return None
        images, skipped = saved["images"], [int(i) for i in saved.get("skipped", [])]
        ok = isinstance(images, Tensor) and images.dtype == torch.uint8
        if ok and tuple(images.shape) == (n - len(skipped), channels, size, size):
            return images, skipped
    except Exception:
        pass  # damaged or foreign: decode again
    return None


def _write(cache: Path, obj: Any) -> None:
    """``torch.save`` to a temporary file, then ``os.replace``; a folder that cannot be written is left alone."""
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        os.replace(tmp, cache)
    except (OSError, RuntimeError):
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ worker pool


def default_workers() -> int:
    """The CPUs this process may use (a container's or taskset's share), divided among the ranks of a torchrun
    launch on this machine; 1 inside a daemonic process (which may not start children)."""
    if multiprocessing.current_process().daemon:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        ranks = 1
    return max(1, cpus // ranks)


FORK = sys.platform.startswith("linux")  # worker processes are forked here, spawned elsewhere


@contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Worker processes: forked on Linux (they start in milliseconds: no re-import of torch), spawned elsewhere."""
    ctx = multiprocessing.get_context("fork" if FORK else "spawn")
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _submit(executor: ProcessPoolExecutor, fn: Any, *args: Any) -> Future:
    with (
        warnings.catch_warnings()
    ):  # Python >= 3.12 warns about fork in a threaded process; children use no threads
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        return executor.submit(fn, *args)


_SHARED: np.ndarray | None = None  # the output rows, in memory that forked workers share (see _decode_all)


def _decode_chunk(
    paths: list[str], size: int, mode: str, start: int, stop_at_first: bool
) -> tuple[int, int, np.ndarray | None, list[tuple[int, str]]]:
    """Worker task: ``paths`` decoded into rows ``start...`` of the shared output (a forked worker), else into an
    array sent back. Returns (start, count, that array or None, [(offset, reason) of unreadable files])."""
    shared = _SHARED
    out = (
        shared[start : start + len(paths)]
        if shared is not None
        else np.zeros((len(paths), 1 if mode == "L" else 3, size, size), dtype=np.uint8)
    )  # both start as zeros: an unreadable file's row stays black
    failed: list[tuple[int, str]] = []
    for i, p in enumerate(paths):
        try:
            out[i] = decode_image(p, size, mode)
        except UnreadableImage as exc:
            failed.append((i, exc.reason))
            if stop_at_first:
                break
    return start, len(paths), None if shared is not None else out, failed


def _scan_chunk(paths: list[str]) -> bool:
    """Worker task: whether every readable file among ``paths`` is grayscale."""
    for p in paths:
        try:
            if not is_grayscale(p):
                return False
        except UnreadableImage:
            pass
    return True


def _chunks(n: int, workers: int) -> list[tuple[int, int]]:
    step = max(16, min(CHUNK, math.ceil(n / (4 * workers))))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


class _RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        return Text(
            f"{task.speed:,.0f} images/s" if task.speed else "- images/s", style="progress.data.speed"
        )


@contextmanager
def _progress(n: int, description: str) -> Iterator[Any]:
    """``advance(k)`` for a bar on a terminal when there are many files; a summary line in a log instead."""
    show = n > PROGRESS_MIN
    bar = progress_bar(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        _RateColumn(),
        enabled=show,
        transient=True,
    )
    t0 = time.perf_counter()
    with bar:
        task = bar.add_task(description, total=n)
        yield lambda k: bar.advance(task, k)
    if show:
        s = time.perf_counter() - t0
        rate = n / max(s, 1e-9)
        console.print(
            f"{description}: {n:,} files in {s:.1f} s ({rate:,.0f} images/s)", markup=False, highlight=False
        )


def _decode_all(
    files: list[Path], size: int, mode: str, what: str, skip_unreadable: bool, workers: int | None
) -> tuple[Tensor, list[int]]:
    """Decode into one tensor; returns it (unreadable rows removed) and the unreadable files' indices."""
    n, channels = len(files), 1 if mode == "L" else 3
    out = torch.empty(n, channels, size, size, dtype=torch.uint8)
    failed: dict[int, str] = {}
    workers = max(1, workers or default_workers())
    if multiprocessing.current_process().daemon:
        workers = 1

    def refuse(i: int, reason: str) -> UsageError:
        return UsageError(f"{UnreadableImage(files[i], reason)}; delete or replace the file")

    description = f"decoding {what} to {size}x{size} {mode}"
    if n < IN_PROCESS_MAX or workers == 1:
        with _progress(n, description) as advance:
            for i, f in enumerate(files):
                try:
                    out[i] = torch.from_numpy(decode_image(f, size, mode))
                except UnreadableImage as exc:
                    if not skip_unreadable:
                        raise refuse(i, exc.reason) from None
                    failed[i] = exc.reason
                    out[i] = 0
                advance(1)
    else:
        global _SHARED
        spans = _chunks(n, workers)
        if FORK:  # the workers write their rows straight into the output: nothing is pickled back
            # anonymous and shared, zero-filled: not /dev/shm, which containers keep small
            buffer = mmap.mmap(-1, max(1, out.numel()))
            out = torch.from_numpy(np.frombuffer(buffer, np.uint8, out.numel()).reshape(out.shape))
            _SHARED = out.numpy()
        try:
            with _pool(min(workers, len(spans))) as executor:
                pending = {
                    _submit(
                        executor,
                        _decode_chunk,
                        [str(f) for f in files[a:b]],
                        size,
                        mode,
                        a,
                        not skip_unreadable,
                    )
                    for a, b in spans
                }
                with _progress(n, f"{description} ({min(workers, len(spans))} processes)") as advance:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            start, count, array, fails = future.result()
                            if array is not None:
                                out[start : start + count] = torch.from_numpy(array)
                            for offset, reason in fails:
                                if not skip_unreadable:
                                    raise refuse(start + offset, reason)
                                failed[start + offset] = reason
                            advance(count)
        finally:
            _SHARED = None
    skipped = sorted(failed)
    if skipped:  # move the kept rows up in place, in blocks (numpy copies overlapping blocks correctly)
        rows, write, previous = out.numpy(), 0, -1
        for s in [*skipped, n]:
            for read in range(previous + 1, s, 4096):
                length = min(4096, s - read)
                if read != write:
                    rows[write : write + length] = rows[read : read + length]
                write += length
            previous = s
        out.resize_(n - len(skipped), channels, size, size)
    return out, skipped


def _log_skipped(skipped: list[Path], what: str) -> None:
    if skipped:
        names = ", ".join(str(f) for f in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        console.print(
            f"skipped {len(skipped)} unreadable {what} (cannot be decoded): {names}",
            markup=False,
            highlight=False,
        )


def load_images(
    files: list[Path],
    size: int,
    mode: str,
    cache: Path | None,
    what: str = "images",
    skip_unreadable: bool = False,
    workers: int | None = None,
) -> tuple[Tensor, list[Path]]:
    """Decode ``files`` (:func:`decode_image`) into uint8 ``(N_kept, C, size, size)``; returns it and the files
    skipped as unreadable.

    Unreadable files: skipped and returned (and logged on stderr) with ``skip_unreadable``, else the first one is a
    UsageError naming it. Decoding runs in ``workers`` processes (default: the CPUs this process may use) on
    chunks of files, with a progress bar on a terminal; short lists decode in this process. :func:`check_memory`
    refuses a tensor that would not fit before anything is decoded. ``cache``: a ``.pt`` file used only when it
    was made from the same files (relative paths, sizes, modification times), side and mode, written atomically;
    a damaged one is ignored, a folder that cannot be written to is not cached into; None: no cache."""
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    files = [f if isinstance(f, Path) else Path(f) for f in files]
    channels = 1 if mode == "L" else 3
    check_memory(len(files), channels, size, what)
    key = _file_key(files, cache.parent, size, mode) if cache is not None else ""
    hit = _read_cache(cache, key, len(files), channels, size) if cache is not None else None
    if hit is not None:
        images, skipped_index = hit
        if skipped_index and not skip_unreadable:
            try:
                decode_image(files[skipped_index[0]], size, mode)
            except UnreadableImage as exc:
                raise UsageError(f"{exc}; delete or replace the file") from None
            hit = None  # it reads now after all (a decoder update): decode everything again
    if hit is None:
        images, skipped_index = _decode_all(files, size, mode, what, skip_unreadable, workers)
        if cache is not None:
            _write(cache, {"key": key, "images": images, "skipped": skipped_index})
    skipped = [files[i] for i in skipped_index]
    _log_skipped(skipped, what)
    return images, skipped


def common_mode(files: list[Path], cache: Path | None = None, workers: int | None = None) -> str:
    """ "L" when every readable file among ``files`` is grayscale (:func:`is_grayscale`), else "RGB".

    Reads headers only, stopping at the first colour file; a long all-grey list is scanned in worker processes
    and its answer cached in ``cache`` (a small ``.pt``, keyed like :func:`load_images`'s cache)."""
    files = [f if isinstance(f, Path) else Path(f) for f in files]
    head = min(len(files), CHUNK)
    if not _scan_chunk([str(f) for f in files[:head]]):
        return "RGB"
    if head == len(files):
        return "L"
    key = _file_key(files, cache.parent, 0, "grayscale-scan") if cache is not None else ""
    if cache is not None and cache.is_file():
        try:
            saved = torch.load(cache, weights_only=True)
            if saved.get("key") == key and saved.get("mode") in ("L", "RGB"):
                return saved["mode"]
        except Exception:
            pass
    rest = files[head:]
    workers = 1 if multiprocessing.current_process().daemon else max(1, workers or default_workers())
    if len(rest) < IN_PROCESS_MAX or workers == 1:
        gray = _scan_chunk([str(f) for f in rest])
    else:
        spans = _chunks(len(rest), workers)
        with _pool(min(workers, len(spans))) as executor:
            futures = [_submit(executor, _scan_chunk, [str(f) for f in rest[a:b]]) for a, b in spans]
            gray = all(f.result() for f in futures)
    mode = "L" if gray else "RGB"
    if cache is not None:
        _write(cache, {"key": key, "mode": mode})
    return mode
