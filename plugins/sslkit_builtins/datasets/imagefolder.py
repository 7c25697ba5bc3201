"""A person's own folder of images: ``--data imagefolder --data-opt path=DIR``.

Layout (``unlabeled``, ``test`` and ``train`` are reserved folder names, never classes)::

    DIR/<class>/...  or  DIR/train/<class>/...     labeled images, any depth below the class folder
    DIR/unlabeled/...                              the unlabeled pool, any depth (or unlabeled=PATH elsewhere)
    DIR/test/<class>/...                           the test split (optional); its classes must be labeled ones

``labels=FILE.csv`` (absolute, or relative to the current directory, else to DIR) takes the labels from a CSV
instead of class folders: columns ``path,label`` (others, such as ``guess``, are ignored), paths relative to DIR; a
row with an empty label is a pool image. Then the classes are the CSV's labels (sorted as text), class folders are
not read, and the pool is the empty-label rows plus ``DIR/unlabeled/`` (or ``unlabeled=PATH``), or, with neither,
every other image under DIR (the loop ``sslkit suggest`` writes the CSV for). A file the CSV labels is never in the
pool.

A folder with no labels yet (only ``DIR/unlabeled/``, a CSV whose labels are all empty, or just image files) is all
pool: the run trains a label-free method and ``sslkit suggest`` picks the images to label first.

With a pool of its own, the folder's labels are the labeled set (``labels_given``): every one is used, and without
``DIR/test/`` the test split is empty rather than taking labels away from the few there are. Without a pool, the
training images minus a labeled budget form the pool as for any dataset, and without ``test/`` a seeded per-class
``test_fraction`` of each class is held out. Pool and test files are never in the pool twice, nor labeled ones.

Images are "L" when every file is grayscale (read from the headers; the answer is cached), else "RGB", resized to
``image_size`` squares (default 64) and cached per split in ``DIR/.sslkit-cache/``. Augmentations flip images left
to right unless ``flips=false`` (digits, text: anything whose mirror image means something else). Pool files that
cannot be decoded are skipped and named in ``record["skipped"]``; an unreadable labeled or test file is an error."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit.data.images import IMAGE_SUFFIXES, check_memory, common_mode, find_images, load_images
from sslkit_builtins.datasets.common import channel_stats

RESERVED = ("unlabeled", "test", "train")


def is_class_folder(folder: Path, pool: Path | None) -> bool:
    """Not hidden, not a reserved name, not the pool's folder."""
    reserved = folder.name.startswith(".") or folder.name in RESERVED
    return not reserved and (pool is None or folder.resolve() != pool.resolve())


def class_folders(folder: Path, pool: Path | None = None) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted, any depth), for each non-hidden, non-reserved sub-folder other than
    the ``pool`` folder (``unlabeled=PATH`` may name one inside ``folder``)."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and is_class_folder(d, pool))
    if not classes:
        raise UsageError(
            f"{folder} has no class sub-folders; expected {folder}/<class>/<image files>, or pass "
            "--data-opt labels=FILE.csv"
        )
    found = {d.name: find_images(d) for d in classes}
    if not any(found.values()):
        raise UsageError(
            f"no image files under {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))} in its class "
            "sub-folders); point path at the folder that holds one sub-folder per class"
        )
    empty = [c for c, files in found.items() if not files]
    if empty:
        raise UsageError(
            f"class folder {folder / empty[0]} has no image files; add images to it or remove the folder"
        )
    return found


def read_labels_csv(csv_path: Path, folder: Path) -> tuple[dict[str, list[Path]], list[Path], str]:
    """A ``path,label`` CSV -> (class -> labeled files, pool files (empty labels), the file's sha256)."""
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read labels file {csv_path} ({exc.strerror}); check --data-opt labels"
        ) from None
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig", errors="replace")))
    columns = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    if "path" not in columns or "label" not in columns:
        found = ", ".join(repr(c) for c in columns) or "none"
        raise UsageError(
            f"{csv_path} has no path and label columns (its header names {found}); its first line must be path,label"
        )
    labeled: dict[Path, str] = {}
    pool: list[Path] = []
    for row in reader:
        name, label = ((row.get(columns[c]) or "").strip() for c in ("path", "label"))
        if not name:
            if label:
                raise UsageError(
                    f"{csv_path} line {reader.line_num} has a label but no path; fill in the path"
                )
            continue
        file = Path(os.path.normpath(folder / name))
        if not file.is_file():
            raise UsageError(
                f"{csv_path} line {reader.line_num} names {name}, which is not a file under {folder}; fix the path "
                "(relative to the image folder) or remove the row"
            )
        if label and labeled.get(file, label) != label:
            raise UsageError(
                f"{csv_path} labels {name} both {labeled[file]!r} and {label!r}; keep one of the rows"
            )
        if label:
            labeled[file] = label
        else:
            pool.append(file)
    by_class: dict[str, list[Path]] = {c: [] for c in sorted(set(labeled.values()))}
    for file, label in sorted(labeled.items()):
        by_class[label].append(file)
    return by_class, [f for f in dict.fromkeys(pool) if f not in labeled], hashlib.sha256(raw).hexdigest()


def holdout(counts: list[int], fraction: float, seed: int = 0) -> torch.Tensor:
    """A test mask over the files of all classes: ``round(fraction * n)`` per class (at least one when a class
    has two or more images), drawn with a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    masks = []
    for n in counts:
        take = min(n - 1, max(1, round(fraction * n))) if n >= 2 else 0
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.randperm(n, generator=gen)[:take]] = True
        masks.append(mask)
    return torch.cat(masks)


def relative(files: list[Path], folder: Path) -> list[str]:
    """Each file's path relative to ``folder``, posix style (``../`` for files outside it)."""
    prefix = str(folder).rstrip(os.sep) + os.sep
    out = []
    for f in files:
        s = str(f)
        rel = s[len(prefix) :] if s.startswith(prefix) else os.path.relpath(s, folder)
        out.append(Path(rel).as_posix())
    return out


def find_path(value: str, bases: list[Path], kind: str, option: str) -> Path:
    """``value`` as a person types it: absolute, or relative to the first of ``bases`` where it exists (the
    current directory first); else a one-line error naming each place looked at."""
    given = Path(value).expanduser()
    candidates = [given] if given.is_absolute() else [base / given for base in bases]
    exists = Path.is_dir if kind == "folder" else Path.is_file
    for candidate in candidates:
        if exists(candidate):
            return Path(os.path.abspath(candidate))
    looked = " nor ".join(str(Path(os.path.abspath(c))) for c in candidates)
    raise UsageError(f"{option} {value} not found: no {kind} {looked}; check --data-opt {option}")


def load(
    root: Path,
    download: bool,
    path: str = "",
    image_size: int = 64,
    test_fraction: float = 0.2,
    unlabeled: str = "",
    labels: str = "",
    flips: bool = True,
) -> DatasetBundle:
    if not path:
        raise UsageError(
            "the imagefolder dataset needs its folder: --data-opt path=DIR (one sub-folder per class)"
        )
    if not 8 <= image_size <= 1024:
        raise UsageError(f"imagefolder option image_size must be between 8 and 1024, got {image_size}")
    if not 0 < test_fraction < 1:
        raise UsageError(f"imagefolder option test_fraction must be between 0 and 1, got {test_fraction}")
    folder = find_path(path, [Path.cwd(), root], "folder", "path")  # a benchmark's: under the data root
    resolved = {"path": str(folder)}  # each path option as found: a later command finds them from anywhere
    cache_dir = folder / ".sslkit-cache"
    record: dict[str, Any] = {
        "folder": str(folder),
        "labels_from": "class folders",
        "skipped": [],
        "cache": str(cache_dir),
    }

    pool_dir = folder / "unlabeled"
    if unlabeled:  # a pile elsewhere
        pool_dir = find_path(unlabeled, [Path.cwd(), folder], "folder", "unlabeled")
        resolved["unlabeled"] = str(pool_dir)

    # labeled images: a CSV, or class folders in DIR/train/ or DIR/
    pool: list[Path] = []
    if labels:
        csv_path = find_path(labels, [Path.cwd(), folder], "file", "labels")
        resolved["labels"] = str(csv_path)
        labeled, pool, digest = read_labels_csv(csv_path, folder)
        record.update(labels_from=f"CSV {csv_path}", labels_csv_sha256=digest)
    else:
        base = folder / "train" if (folder / "train").is_dir() else folder
        subfolders = [d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if base == folder and not unlabeled and not subfolders:  # a plain pile of images, no labels yet
            pool_dir = folder
        no_classes = not any(is_class_folder(d, pool_dir) for d in subfolders)
        labeled = {} if no_classes and pool_dir.is_dir() else class_folders(base, pool_dir)
        if not labeled:
            record["labels_from"] = "none yet"
    classes = sorted(labeled)
    if len(classes) == 1:
        raise UsageError(
            f"{record['labels_from']} labels one class only ({classes[0]!r}); a classifier needs two: label images "
            "of at least one other class"
        )

    test: dict[str, list[Path]] | None = None
    if (folder / "test").is_dir():
        test = class_folders(folder / "test")
        extra = sorted(set(test) - set(classes))
        if extra:
            raise UsageError(
                f"{folder / 'test'} has class folders that no labeled image has: {', '.join(extra)}; "
                "label some images of those classes or remove the folders"
            )
        if labels:
            test_set = {f for files in test.values() for f in files}
            inside = next((f for files in labeled.values() for f in files if f in test_set), None)
            if inside is not None:
                raise UsageError(
                    f"{record['labels_from']} labels {inside}, a test image; label it by its test/<class>/ "
                    "folder only, or move it out of test/"
                )

    # the pool: unlabeled=PATH, else DIR/unlabeled/; plus a CSV's empty-label rows
    if labels and not unlabeled and not pool_dir.is_dir():  # a plain pile labeled by a CSV: the rest is pool
        pool_dir = folder
    if pool_dir.exists():
        found = find_images(pool_dir)
        if not found and pool_dir == folder:
            raise UsageError(
                f"{folder} has no class sub-folders and no image files; put labeled images in {folder}/<class>/ "
                f"and the unlabeled pile in {folder}/unlabeled/"
            )
        if not found:
            raise UsageError(f"no image files under {pool_dir}, the unlabeled pool; add images or remove it")
        pool += found
        record["unlabeled_from"] = str(pool_dir)
    taken = {f for files in labeled.values() for f in files}
    taken |= {f for files in (test or {}).values() for f in files}
    pool = [f for f in dict.fromkeys(pool) if f not in taken]
    has_pool = bool(pool)

    # splits: test/ as given; else nothing (own pool: every label is for training) or a seeded holdout
    train_parts = {c: labeled[c] for c in classes}
    if test is None and not has_pool:
        counts = [len(train_parts[c]) for c in classes]
        is_test = iter(holdout(counts, test_fraction).tolist())
        test, train_parts = {c: [] for c in classes}, {c: [] for c in classes}
        for c in classes:
            for f in labeled[c]:
                (test if next(is_test) else train_parts)[c].append(f)
    parts = {"train": train_parts, "test": test or {}}
    if not any(train_parts.values()) and not has_pool:
        raise UsageError(f"the train split of {folder} has no images; add images or lower test_fraction")
    if not has_pool and not any(parts["test"].values()):
        raise UsageError(
            f"the test split of {folder} has no images: a class needs at least 2 images to hold one out; add "
            f"images, a {folder}/test/<class>/ folder, or an unlabeled pile in {folder}/unlabeled/"
        )

    every = [f for part in parts.values() for files in part.values() for f in files] + pool
    mode = common_mode(every, cache_dir / "grayscale.pt")
    channels = 1 if mode == "L" else 3
    check_memory(len(every), channels, image_size, f"{len(every):,} images of {folder}")
    splits: dict[str, Split] = {}
    train_files: list[Path] = []
    for name, part in parts.items():
        files = [f for c in classes for f in part.get(c, [])]
        y = torch.tensor([i for i, c in enumerate(classes) for _ in part.get(c, [])], dtype=torch.int64)
        if files:
            cache = cache_dir / f"{name}-{image_size}-{mode}.pt"
            x, _ = load_images(files, image_size, mode, cache, f"{name} images")
        else:
            x = torch.empty(0, channels, image_size, image_size, dtype=torch.uint8)
        splits[name] = Split(x, y)
        train_files = files if name == "train" else train_files

    pool_x, pool_kept = None, None
    if has_pool:
        cache = cache_dir / f"unlabeled-{image_size}-{mode}.pt"
        pool_x, skipped = load_images(pool, image_size, mode, cache, "unlabeled images", skip_unreadable=True)
        if not len(pool_x):
            raise UsageError(
                f"none of the {len(pool):,} unlabeled images could be decoded (the first: {skipped[0]}); "
                "check the files in the pool"
            )
        record["skipped"] = relative(skipped, folder)
        dropped = set(skipped)
        pool_kept = relative([f for f in pool if f not in dropped], folder)

    train = splits["train"].images
    sample = (
        train
        if pool_x is None
        else torch.cat([train[:: max(1, len(train) // 5000)], pool_x[:: max(1, len(pool_x) // 5000)]])
    )
    mean, std = channel_stats(sample)
    info = DataInfo(folder.name, classes, channels, image_size, mean, std, flips=flips)
    return DatasetBundle(
        info,
        splits["train"],
        splits["test"],
        unlabeled=pool_x,
        labels_given=has_pool,
        train_files=relative(train_files, folder),
        unlabeled_files=pool_kept,
        record=record,
        options=resolved,
    )


@hookimpl
def sslkit_datasets() -> list[Component]:
    return [
        Component(
            "imagefolder",
            load,
            "your own images: DIR/<class>/ (or a labels CSV), DIR/unlabeled/, DIR/test/ (--data-opt path=DIR)",
        )
    ]
