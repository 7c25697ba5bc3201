"""PASCAL VOC 2007 classification from the devkit's layout (what torchvision's VOCDetection extracts):
``ROOT/VOCdevkit/VOC2007/{JPEGImages, Annotations, ImageSets/Main/{trainval,test}.txt}``.

Each image gets 20 targets, as the 2007 devkit scores classification: 1 when a non-difficult object of the class is
in it, -1 when the class appears only as 'difficult' objects (neither positive nor negative), 0 otherwise.
Images are resized to ``image_size`` squares and cached as ``sslkit-cache/{split}-{size}.pt`` next to the data.
trainval is the training split, test the test split (download VOCtest_06-Nov-2007.tar into the same folder)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import torch

from sslkit import Component, DataInfo, DatasetBundle, Split, UsageError, hookimpl
from sslkit.data.images import load_images
from sslkit_builtins.datasets.common import channel_stats, guarded_download, missing

CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip


def read_targets(annotation: Path) -> list[float]:
    """The 20 targets of one image from its XML annotation."""
    try:
        root = ET.parse(annotation).getroot()
    except (OSError, ET.ParseError) as exc:
        raise UsageError(f"cannot read VOC annotation {annotation} ({exc}); restore the file") from None
    target = [0.0] * len(CLASSES)
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in CLASSES:
            raise UsageError(f"{annotation} names an unknown VOC class {name!r}; restore the file")
        i = CLASSES.index(name)
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        if not difficult:
            target[i] = 1.0
        elif target[i] == 0.0:
            target[i] = -1.0
    return target


def read_split(folder: Path, split: str, image_size: int) -> Split:
    listing = folder / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.exists():
        raise missing("voc2007", folder, False, f"no ImageSets/Main/{split}.txt")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise UsageError(f"{listing} lists no images; restore the file")
    files = [folder / "JPEGImages" / f"{i}.jpg" for i in ids]
    for f in files:
        if not f.exists():
            raise UsageError(f"{listing} lists {f.stem} but {f} does not exist; restore the image")
    labels = torch.tensor([read_targets(folder / "Annotations" / f"{i}.xml") for i in ids])
    cache = folder / "sslkit-cache" / f"{split}-{image_size}.pt"
    # every file must decode: an unreadable one is a one-line error naming it
    images, _ = load_images(files, image_size, "RGB", cache, f"VOC2007 {split} images")
    return Split(images, labels)


def load(root: Path, download: bool, image_size: int = 224) -> DatasetBundle:
    if not 8 <= image_size <= 1024:
        raise UsageError(f"voc2007 option image_size must be between 8 and 1024, got {image_size}")
    folder = root / "VOCdevkit" / "VOC2007"
    if not (folder / "ImageSets" / "Main" / "trainval.txt").exists():
        if not download:
            raise missing("voc2007", folder, download, "no ImageSets/Main/trainval.txt")
        import torchvision.datasets as tvd

        for image_set in ("trainval", "test"):
            guarded_download(
                "voc2007",
                folder,
                lambda s=image_set: tvd.VOCDetection(str(root), year="2007", image_set=s, download=True),
            )
    train = read_split(folder, "trainval", image_size)
    test = read_split(folder, "test", image_size)
    mean, std = channel_stats(train.images)
    info = DataInfo("voc2007", list(CLASSES), 3, image_size, mean, std, multilabel=True, flips=True)
    return DatasetBundle(info, train, test)


@hookimpl
def sslkit_datasets() -> list[Component]:
    return [
        Component(
            "voc2007",
            load,
            "PASCAL VOC 2007, 20-class multi-label (5,011 trainval / 4,952 test), resized to image_size",
        )
    ]
