"""Any folder of images with one sub-folder per class, e.g. Stanford Dogs' ``Images/<breed>/*.jpg``.

``path`` is the folder (absolute, or relative to the data root). When it holds ``train/`` and ``test/`` folders,
those are the splits; otherwise a seeded, per-class ``test_fraction`` of each class is held out. Images are
converted to RGB (to one channel when every image is grayscale), resized to ``image_size`` squares and cached as
``.sslkit-cache/{split}-{size}-{mode}.pt`` inside the folder."""

from __future__ import annotations

from pathlib import Path

import torch

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit_builtins.datasets.common import IMAGE_SUFFIXES, channel_stats, is_grayscale, load_images


def list_images(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted), for each non-hidden sub-folder of ``folder``."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UsageError(f"{folder} has no class sub-folders; expected {folder}/<class>/<image files>")
    found = {
        d.name: sorted(
            f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
        )
        for d in classes
    }
    if not any(found.values()):
        raise UsageError(
            f"no image files under {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))} in its class "
            "sub-folders); point path at the folder that holds one sub-folder per class"
        )
    return found


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


def load(
    root: Path, download: bool, path: str = "", image_size: int = 64, test_fraction: float = 0.2
) -> DatasetBundle:
    if not path:
        raise UsageError(
            "the imagefolder dataset needs its folder: --data-opt path=DIR (one sub-folder per class)"
        )
    if not 8 <= image_size <= 1024:
        raise UsageError(f"imagefolder option image_size must be between 8 and 1024, got {image_size}")
    if not 0 < test_fraction < 1:
        raise UsageError(f"imagefolder option test_fraction must be between 0 and 1, got {test_fraction}")
    folder = Path(path).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    if not folder.is_dir():
        raise UsageError(
            f"image folder {folder} does not exist; check --data-opt path (relative to the data root)"
        )

    if (folder / "train").is_dir() and (folder / "test").is_dir():
        train_found, test_found = list_images(folder / "train"), list_images(folder / "test")
        extra = sorted(set(test_found) - set(train_found))
        if extra:
            raise UsageError(
                f"{folder}/test has class folders missing from {folder}/train: {', '.join(extra)}"
            )
        classes = sorted(train_found)
        parts = {"train": train_found, "test": test_found}
    else:
        found = list_images(folder)
        classes = sorted(found)
        counts = [len(found[c]) for c in classes]
        is_test = holdout(counts, test_fraction).tolist()
        files = [(c, f) for c in classes for f in found[c]]
        parts = {"train": {c: [] for c in classes}, "test": {c: [] for c in classes}}
        for (c, f), t in zip(files, is_test):
            parts["test" if t else "train"][c].append(f)

    every = [f for part in parts.values() for fs in part.values() for f in fs]
    mode = "L" if all(is_grayscale(f) for f in every) else "RGB"
    splits = {}
    for name, part in parts.items():
        files = [f for c in classes for f in part.get(c, [])]
        if not files:
            raise UsageError(f"the {name} split of {folder} has no images; add images or lower test_fraction")
        labels = torch.tensor([i for i, c in enumerate(classes) for _ in part.get(c, [])], dtype=torch.int64)
        cache = folder / ".sslkit-cache" / f"{name}-{image_size}-{mode}.pt"
        splits[name] = Split(load_images(files, image_size, mode, cache, f"{name} images"), labels)
    mean, std = channel_stats(splits["train"].images)
    info = DataInfo(folder.name, classes, 1 if mode == "L" else 3, image_size, mean, std)
    return DatasetBundle(info, splits["train"], splits["test"])


@hookimpl
def sslkit_datasets() -> list[Component]:
    return [
        Component(
            "imagefolder",
            load,
            "a folder with one sub-folder of images per class (--data-opt path=DIR), resized to image_size",
        )
    ]
