"""Dataset providers on tiny files written in the exact on-disk formats torchvision reads (CIFAR pickles, STL-10
binaries, SVHN .mat, idx) and a person's own image folders (class folders, unlabeled/, test/, a labels CSV): values
round-trip exactly; truncated, corrupt and missing files are one-line errors that name the file or the path."""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from sslkit import UsageError
from sslkit.cli import main

NOVERIFY = {"verify": False}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def make_cifar(root: Path, hundred: bool = False, per_batch: int = 6) -> tuple[np.ndarray, list[int]]:
    """Write a tiny CIFAR-10 (or -100) in the python-pickle layout; returns all train data rows and labels."""
    k = 100 if hundred else 10
    key = b"fine_labels" if hundred else b"labels"
    g = rng(1)
    rows, labels = [], []

    def batch(name: str, n: int) -> dict[bytes, object]:
        data = g.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = g.integers(0, k, n).tolist()
        out: dict[bytes, object] = {b"batch_label": name.encode(), key: y, b"data": data}
        out[b"filenames"] = [f"img_{i}.png".encode() for i in range(n)]
        if hundred:
            out[b"coarse_labels"] = [c // 5 for c in y]
        return out

    if hundred:
        folder = root / "cifar-100-python"
        train = batch("train", 2 * per_batch)
        write_pickle(folder / "train", train)
        rows.append(train[b"data"])
        labels += train[key]
        write_pickle(folder / "test", batch("test", per_batch))
        names = [f"class{i}".encode() for i in range(100)]
        write_pickle(folder / "meta", {b"fine_label_names": names, b"coarse_label_names": names[:20]})
    else:
        folder = root / "cifar-10-batches-py"
        for i in range(1, 6):
            b = batch(f"training batch {i} of 5", per_batch)
            write_pickle(folder / f"data_batch_{i}", b)
            rows.append(b[b"data"])
            labels += b[key]
        write_pickle(folder / "test_batch", batch("testing batch 1 of 1", per_batch))
        names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
        names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
        write_pickle(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch})
    return np.concatenate(rows), labels


def truncate(path: Path, keep: float = 0.6) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


# ------------------------------------------------------------------------------------------- CIFAR


def test_cifar10_round_trip(tmp_path: Path, registry) -> None:
    rows, labels = make_cifar(tmp_path)
    bundle = registry.build("dataset", "cifar10", tmp_path, False, options=NOVERIFY)
    assert bundle.train.images.shape == (30, 3, 32, 32) and bundle.train.images.dtype == torch.uint8
    assert bundle.test.images.shape == (6, 3, 32, 32)
    assert bundle.train.labels.tolist() == labels
    # row layout: 1024 red values, then green, then blue, each row-major
    img = bundle.train.images[7]
    assert img[0, 0, 0] == rows[7, 0] and img[0, 0, 1] == rows[7, 1] and img[0, 1, 0] == rows[7, 32]
    assert img[1, 0, 0] == rows[7, 1024] and img[2, 31, 31] == rows[7, 3071]
    assert torch.equal(bundle.train.images.flatten(1), torch.from_numpy(rows))
    assert bundle.info.classes[0] == "airplane" and bundle.info.num_classes == 10
    assert bundle.info.flips and bundle.info.in_chans == 3 and bundle.info.image_size == 32
    expected_mean = rows.reshape(-1, 3, 1024).transpose(1, 0, 2).reshape(3, -1).mean(1) / 255
    assert np.allclose(bundle.info.mean, expected_mean, atol=1e-5)
    assert bundle.unlabeled is None


def test_cifar100_uses_fine_labels(tmp_path: Path, registry) -> None:
    rows, labels = make_cifar(tmp_path, hundred=True)
    bundle = registry.build("dataset", "cifar100", tmp_path, False, options=NOVERIFY)
    assert bundle.info.num_classes == 100 and bundle.info.classes[3] == "class3"
    assert bundle.train.labels.tolist() == labels
    assert torch.equal(bundle.train.images.flatten(1), torch.from_numpy(rows))


def test_cifar_checksums_truncation_and_bad_content(tmp_path: Path, registry) -> None:
    make_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    with pytest.raises(UsageError, match=r"data_batch_1 fails its md5 check.*verify=false"):
        registry.build("dataset", "cifar10", tmp_path, False)  # verify=True: these are not the official files
    truncate(folder / "data_batch_3")
    with pytest.raises(UsageError, match=r"data_batch_3 is truncated"):
        registry.build("dataset", "cifar10", tmp_path, False, options=NOVERIFY)
    write_pickle(folder / "data_batch_3", {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4})
    with pytest.raises(UsageError, match=r"data_batch_3 has data uint8 \(4, 3000\)"):
        registry.build("dataset", "cifar10", tmp_path, False, options=NOVERIFY)
    write_pickle(folder / "data_batch_3", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    with pytest.raises(UsageError, match=r"data_batch_3 holds labels outside 0..9"):
        registry.build("dataset", "cifar10", tmp_path, False, options=NOVERIFY)


def test_missing_dataset_names_the_path_and_the_fix(tmp_path: Path, registry) -> None:
    for name, folder in [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("stl10", "stl10_binary"),
        ("svhn", "svhn"),
        ("mnist", "MNIST/raw"),
    ]:
        with pytest.raises(UsageError) as err:
            registry.build("dataset", name, tmp_path, False)
        msg = str(err.value)
        assert str(tmp_path / folder) in msg and "--data-root" in msg and "\n" not in msg, msg
    make_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(UsageError, match="no test_batch"):
        registry.build("dataset", "cifar10", tmp_path, False, options=NOVERIFY)


def test_cli_reports_a_missing_dataset_in_one_line(tmp_path: Path, capsys) -> None:
    code = main(
        ["run", "--data", "cifar10", "--data-root", str(tmp_path), "--no-download", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "cifar-10-batches-py" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------ STL-10


def make_stl10(root: Path, n_train: int = 5, n_test: int = 3, n_unlabeled: int = 4) -> dict[str, np.ndarray]:
    """Raw binaries as the STL-10 distribution stores them: every channel column-major, labels 1..10."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    g = rng(2)
    out = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        images = g.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W), row-major
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())
        out[f"{split}_X"] = images
        if split != "unlabeled":
            y = g.integers(1, 11, n, dtype=np.uint8)
            y[0] = 10
            (folder / f"{split}_y.bin").write_bytes(y.tobytes())
            out[f"{split}_y"] = y
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    return out


def test_stl10_round_trip_with_unlabeled_pool(tmp_path: Path, registry) -> None:
    ref = make_stl10(tmp_path)
    bundle = registry.build("dataset", "stl10", tmp_path, False, options=NOVERIFY)
    assert torch.equal(bundle.train.images, torch.from_numpy(ref["train_X"]))
    assert torch.equal(bundle.test.images, torch.from_numpy(ref["test_X"]))
    assert bundle.unlabeled is not None and torch.equal(
        bundle.unlabeled, torch.from_numpy(ref["unlabeled_X"])
    )
    assert bundle.train.labels.tolist() == (ref["train_y"].astype(int) - 1).tolist()
    assert bundle.train.labels[0] == 9 and bundle.test.labels.max() <= 9
    assert bundle.info.classes[7] == "monkey" and bundle.info.image_size == 96 and bundle.info.flips
    without = registry.build(
        "dataset", "stl10", tmp_path, False, options={"verify": False, "unlabeled": False}
    )
    assert without.unlabeled is None


def test_stl10_truncated_and_mismatched_files(tmp_path: Path, registry) -> None:
    make_stl10(tmp_path)
    folder = tmp_path / "stl10_binary"
    with pytest.raises(UsageError, match=r"train_X.bin fails its md5 check"):
        registry.build("dataset", "stl10", tmp_path, False)
    raw = (folder / "unlabeled_X.bin").read_bytes()
    (folder / "unlabeled_X.bin").write_bytes(raw[:-100])
    with pytest.raises(UsageError, match=r"unlabeled_X.bin is truncated"):
        registry.build("dataset", "stl10", tmp_path, False, options=NOVERIFY)
    (folder / "unlabeled_X.bin").write_bytes(raw)
    (folder / "test_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(UsageError, match=r"test_y.bin holds 2 labels for 3 images"):
        registry.build("dataset", "stl10", tmp_path, False, options=NOVERIFY)
    (folder / "test_y.bin").write_bytes(b"\x01\x02\x0b")
    with pytest.raises(UsageError, match=r"test_y.bin holds labels outside 0..9"):
        registry.build("dataset", "stl10", tmp_path, False, options=NOVERIFY)


# -------------------------------------------------------------------------------------------- SVHN


def make_svhn(root: Path, sizes: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MATLAB files as the SVHN site serves them: X (32, 32, 3, N) uint8, y (N, 1) in 1..10 (10 is digit 0)."""
    import scipy.io

    folder = root / "svhn"
    folder.mkdir(parents=True)
    g = rng(3)
    out = {}
    for split, n in sizes.items():
        x = g.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = g.integers(1, 11, (n, 1), dtype=np.uint8)
        y[0, 0] = 10
        scipy.io.savemat(str(folder / f"{split}_32x32.mat"), {"X": x, "y": y})
        out[split] = (x, y)
    return out


def test_svhn_round_trip_and_extra_as_unlabeled(tmp_path: Path, registry) -> None:
    ref = make_svhn(tmp_path, {"train": 7, "test": 4, "extra": 5})
    bundle = registry.build("dataset", "svhn", tmp_path, False, options=NOVERIFY)
    x, y = ref["train"]
    assert bundle.train.images.shape == (7, 3, 32, 32)
    assert bundle.train.images[2, 1, 5, 9] == x[5, 9, 1, 2]  # (row, column, channel, image)
    assert torch.equal(bundle.train.images, torch.from_numpy(x).permute(3, 2, 0, 1))
    assert bundle.train.labels.tolist() == (y[:, 0].astype(int) % 10).tolist() and bundle.train.labels[0] == 0
    assert not bundle.info.flips and bundle.unlabeled is None
    with_extra = registry.build("dataset", "svhn", tmp_path, False, options={"verify": False, "extra": True})
    assert torch.equal(with_extra.unlabeled, torch.from_numpy(ref["extra"][0]).permute(3, 2, 0, 1))


def test_svhn_checksum_truncation_and_missing_extra(tmp_path: Path, registry) -> None:
    make_svhn(tmp_path, {"train": 7, "test": 4})
    folder = tmp_path / "svhn"
    with pytest.raises(UsageError, match=r"train_32x32.mat fails its md5 check"):
        registry.build("dataset", "svhn", tmp_path, False)
    with pytest.raises(UsageError, match=r"svhn not found under .*svhn \(no extra_32x32.mat\)"):
        registry.build("dataset", "svhn", tmp_path, False, options={"verify": False, "extra": True})
    truncate(folder / "test_32x32.mat", 0.5)
    with pytest.raises(UsageError, match=r"test_32x32.mat is truncated"):
        registry.build("dataset", "svhn", tmp_path, False, options=NOVERIFY)


def test_pool_holds_train_and_extra_never_test(tmp_path: Path) -> None:
    """A whole `sslkit run` on tiny SVHN: the pretraining pool is (train minus labeled) plus extra."""
    make_svhn(tmp_path, {"train": 60, "test": 20, "extra": 30})
    argv = ["run", "--data", "svhn", "--data-root", str(tmp_path), "--no-download", "--labels", "20"]
    argv += ["--data-opt", "extra=true", "--data-opt", "verify=false", "--epochs", "1", "--batch-size", "16"]
    argv += ["--device", "cpu", "--eval", "knn", "--out", str(tmp_path / "runs")]
    assert main(argv) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    data = json.loads((run_dir / "config.json").read_text())["data"]
    assert (data["train"], data["test"], data["labeled"], data["pool"]) == (60, 20, 20, 60 - 20 + 30)


# --------------------------------------------------------------------------------------------- idx


def test_idx_truncated_gzip_and_mismatched_pair(tmp_path: Path, registry) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = rng(4)

    def idx(array: np.ndarray) -> bytes:
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        return header + array.tobytes()

    images = g.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = g.integers(0, 10, 5, dtype=np.uint8)
    for prefix in ("train", "t10k"):
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(images)))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(labels))
    bundle = registry.build("dataset", "mnist", tmp_path, False)
    assert torch.equal(bundle.train.images[:, 0], torch.from_numpy(images))
    assert bundle.test.labels.tolist() == labels.tolist()
    truncate(raw / "t10k-images-idx3-ubyte.gz", 0.5)
    with pytest.raises(UsageError, match=r"t10k-images-idx3-ubyte.gz is truncated"):
        registry.build("dataset", "mnist", tmp_path, False)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(images)))
    (raw / "train-labels-idx1-ubyte").write_bytes(idx(labels[:4]))
    with pytest.raises(
        UsageError, match=r"train-images-idx3-ubyte.gz \(\(5, 28, 28\)\) and .* do not pair up"
    ):
        registry.build("dataset", "mnist", tmp_path, False)
    (raw / "train-labels-idx1-ubyte").write_bytes(idx(labels)[:-2])
    with pytest.raises(UsageError, match=r"train-labels-idx1-ubyte is truncated or corrupt"):
        registry.build("dataset", "mnist", tmp_path, False)


# ------------------------------------------------------------------------------------- imagefolder


def picture(path: Path, value: int, mode: str = "RGB", size: tuple[int, int] = (10, 12)) -> Path:
    """A small image file whose pixels (plus noise) sit near ``value``, in ``mode``."""
    pixels = np.clip(rng(value).normal(value, 10, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(pixels).convert(mode).save(path)
    return path


def corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng(9).integers(0, 256, 400, dtype=np.uint8).tobytes())
    return path


def imagefolder(registry, folder: Path, **options: object):
    return registry.build(
        "dataset", "imagefolder", folder.parent, False, options={"path": str(folder), **options}
    )


def test_imagefolder_train_unlabeled_and_test_folders(tmp_path: Path, registry, capsys) -> None:
    d = tmp_path / "shelf"
    for c, name in enumerate(("cat", "dog")):
        for i in range(3):
            picture(d / "train" / name / f"{name}{i}.{'png' if i % 2 else 'jpg'}", 60 + 100 * c)
        for i in range(2):
            picture(d / "test" / name / f"t{name}{i}.png", 60 + 100 * c)
    for i in range(5):
        picture(d / "unlabeled" / ("deep/er" if i % 2 else "") / f"u{i}.jpg", 30 * i)
    corrupt(d / "unlabeled" / "broken.jpg")
    (d / "unlabeled" / "notes.txt").write_text("not an image")
    bundle = imagefolder(registry, d, image_size=16)
    assert bundle.labels_given and bundle.info.classes == ["cat", "dog"] and bundle.info.image_size == 16
    assert bundle.info.in_chans == 3 and bundle.info.mode == "RGB"
    assert tuple(bundle.train.images.shape) == (6, 3, 16, 16) and bundle.train.labels.tolist() == [
        0,
        0,
        0,
        1,
        1,
        1,
    ]
    assert len(bundle.test) == 4 and bundle.test.labels.tolist() == [0, 0, 1, 1]
    assert bundle.unlabeled is not None and tuple(bundle.unlabeled.shape) == (5, 3, 16, 16)
    assert bundle.train_files == [f"train/cat/cat{i}.{'png' if i % 2 else 'jpg'}" for i in range(3)] + [
        f"train/dog/dog{i}.{'png' if i % 2 else 'jpg'}" for i in range(3)
    ]
    assert bundle.unlabeled_files == [
        "unlabeled/deep/er/u1.jpg",
        "unlabeled/deep/er/u3.jpg",
        "unlabeled/u0.jpg",
        "unlabeled/u2.jpg",
        "unlabeled/u4.jpg",
    ]
    brightness = bundle.unlabeled.float().mean(dim=(1, 2, 3))
    assert (
        brightness[2] < brightness[0] < brightness[3] < brightness[1] < brightness[4]
    )  # 0 < 30 < 60 < 90 < 120
    assert bundle.record == {
        "folder": str(d),
        "labels_from": "class folders",
        "skipped": ["unlabeled/broken.jpg"],
        "cache": str(d / ".sslkit-cache"),
        "unlabeled_from": str(d / "unlabeled"),
    }
    err = capsys.readouterr().err
    assert "skipped 1 unreadable unlabeled images" in err and "broken.jpg" in err
    cached = {p.name for p in (d / ".sslkit-cache").iterdir()}
    assert {"train-16-RGB.pt", "test-16-RGB.pt", "unlabeled-16-RGB.pt"} <= cached

    again = imagefolder(registry, d, image_size=16)  # from the caches, the same bundle and record
    assert torch.equal(again.unlabeled, bundle.unlabeled) and again.record["skipped"] == [
        "unlabeled/broken.jpg"
    ]


def test_imagefolder_own_pool_without_test_keeps_every_label(tmp_path: Path, registry) -> None:
    d = tmp_path / "few"
    for c in ("a", "b", "c"):
        for i in range(2):
            picture(d / c / f"{i}.png", 50, mode="L")
    for i in range(4):
        picture(d / "unlabeled" / f"{i}.png", 90, mode="L")
    bundle = imagefolder(registry, d, image_size=8)
    assert bundle.labels_given and len(bundle.train) == 6 and bundle.info.in_chans == 1
    assert tuple(bundle.test.images.shape) == (0, 1, 8, 8) and len(bundle.test.labels) == 0
    assert len(bundle.unlabeled) == 4 and bundle.record["skipped"] == []
    assert bundle.info.flips and not imagefolder(registry, d, image_size=8, flips=False).info.flips

    picture(d / "unlabeled" / "colour.png", 90)  # one colour file anywhere makes the whole folder RGB
    assert imagefolder(registry, d, image_size=8).info.in_chans == 3


def test_imagefolder_without_pool_holds_out_per_class(tmp_path: Path, registry) -> None:
    d = tmp_path / "plain"
    for c in ("a", "b"):
        for i in range(5):
            picture(d / "train" / c / f"{i}.png", 70)
    bundle = imagefolder(registry, d, image_size=8, test_fraction=0.2)
    assert not bundle.labels_given and bundle.unlabeled is None and bundle.unlabeled_files is None
    assert (len(bundle.train), len(bundle.test)) == (8, 2) and bundle.test.labels.tolist() == [0, 1]
    assert len(bundle.train_files) == 8 and all(f.startswith("train/") for f in bundle.train_files)


def test_imagefolder_labels_from_csv_with_empty_rows(tmp_path: Path, registry) -> None:
    d = tmp_path / "csvfolder"
    for i in range(6):
        picture(d / "unlabeled" / f"u{i}.png", 20 * i)
    for i in range(3):
        picture(d / "photos" / f"p{i}.jpg", 200)
    picture(d / "ignored" / "x.png", 1)  # a class-like folder: with a CSV, not read
    picture(d / "test" / "zebra" / "t.png", 100)
    corrupt(d / "photos" / "bad.jpg")
    rows = [
        "path,label,guess",
        "photos/p0.jpg,zebra,",
        "photos/p1.jpg,horse,zebra",
        "photos/p2.jpg,,horse",  # empty label: a pool image
        "photos/bad.jpg,,",  # unreadable pool image: skipped
        "unlabeled/u1.png,horse,",  # labeled now: no longer in the pool
        "unlabeled/u1.png,horse,",  # the same row twice is harmless
    ]
    (d / "labels.csv").write_text("\n".join(rows) + "\n")
    bundle = imagefolder(registry, d, image_size=8, labels="labels.csv")
    assert bundle.labels_given and bundle.info.classes == ["horse", "zebra"]
    assert bundle.train_files == ["photos/p1.jpg", "unlabeled/u1.png", "photos/p0.jpg"]
    assert bundle.train.labels.tolist() == [0, 0, 1] and bundle.test.labels.tolist() == [1]
    assert bundle.unlabeled_files == ["photos/p2.jpg", *(f"unlabeled/u{i}.png" for i in (0, 2, 3, 4, 5))]
    assert len(bundle.unlabeled) == 6 and bundle.record["skipped"] == ["photos/bad.jpg"]
    assert bundle.record["labels_from"] == f"CSV {d / 'labels.csv'}"
    assert bundle.record["labels_csv_sha256"] == hashlib.sha256((d / "labels.csv").read_bytes()).hexdigest()

    outside = tmp_path / "pile"  # unlabeled=PATH elsewhere instead of DIR/unlabeled/
    for i in range(2):
        picture(outside / f"o{i}.png", 40)
    other = imagefolder(registry, d, image_size=8, labels=str(d / "labels.csv"), unlabeled="../pile")
    assert other.unlabeled_files == ["photos/p2.jpg", "../pile/o0.png", "../pile/o1.png"]
    assert other.record["unlabeled_from"] == str(outside)


def test_imagefolder_path_is_found_as_typed(tmp_path: Path, registry, monkeypatch) -> None:
    """Relative to the current directory (`sslkit run --data imagefolder --data-opt path=photos` beside it), else
    to the data root; neither: one line naming both places."""
    here, root = tmp_path / "here", tmp_path / "root"
    for folder in (here / "photos", root / "suite"):
        for name in ("cat/a.png", "dog/a.png", "unlabeled/b.png"):
            picture(folder / name, 10)
    monkeypatch.chdir(here)

    def folder(path: str) -> str:
        bundle = registry.build(
            "dataset", "imagefolder", root, False, options={"path": path, "image_size": 8}
        )
        return bundle.record["folder"]

    assert folder("photos") == str(here / "photos")
    assert folder("suite") == str(root / "suite")
    with pytest.raises(
        UsageError, match=r"path nope not found: no folder .*here/nope nor .*root/nope; check --data-opt path"
    ):
        folder("nope")


def bad_folders(tmp: Path) -> list[tuple[str, dict[str, str], str]]:
    """(what, options, what the one-line error must say) for broken image folders written under ``tmp``."""
    cases = []
    (tmp / "noimages" / "cat").mkdir(parents=True)
    (tmp / "noimages" / "cat" / "notes.txt").write_text("x")
    cases.append(("no images", {"path": str(tmp / "noimages")}, "no image files under"))
    picture(tmp / "emptyclass" / "cat" / "a.png", 10)
    (tmp / "emptyclass" / "dog").mkdir()
    cases.append(("empty class", {"path": str(tmp / "emptyclass")}, "class folder .*dog has no image files"))
    (tmp / "noclasses").mkdir()
    cases.append(("no classes", {"path": str(tmp / "noclasses")}, "has no class sub-folders"))
    good = tmp / "good"
    picture(good / "cat" / "a.png", 10)
    picture(good / "cat" / "b.png", 10)
    corrupt(tmp / "corrupt" / "cat" / "broken.jpg")
    picture(tmp / "corrupt" / "cat" / "ok.png", 10)
    picture(tmp / "corrupt" / "dog" / "ok.png", 10)
    picture(tmp / "corrupt" / "unlabeled" / "u.png", 10)
    cases.append(
        ("unreadable labeled file", {"path": str(tmp / "corrupt")}, r"cannot decode image .*broken\.jpg")
    )
    (good / "missing.csv").write_text("path,label\ncat/a.png,cat\ncat/gone.png,cat\n")
    cases.append(
        (
            "csv names a missing file",
            {"path": str(good), "labels": "missing.csv"},
            "line 3 names cat/gone.png",
        )
    )
    (good / "columns.csv").write_text("file,class\ncat/a.png,cat\n")
    cases.append(
        ("csv without columns", {"path": str(good), "labels": "columns.csv"}, "no path and label columns")
    )
    # a CSV whose labels are all empty is no error: no labels yet (a label-free run, then sslkit suggest)
    (good / "twice.csv").write_text("path,label\ncat/a.png,cat\ncat/a.png,dog\n")
    cases.append(
        ("csv labels a file twice", {"path": str(good), "labels": "twice.csv"}, "both 'cat' and 'dog'")
    )
    cases.append(
        (
            "csv not there",
            {"path": str(good), "labels": "nope.csv"},
            "labels nope.csv not found: no file .*good/nope.csv",
        )
    )
    cases.append(
        (
            "pool not there",
            {"path": str(good), "unlabeled": "nope"},
            "unlabeled nope not found: no folder .*good/nope",
        )
    )
    picture(tmp / "oneclass" / "cat" / "a.png", 10)
    picture(tmp / "oneclass" / "unlabeled" / "b.png", 10)
    cases.append(
        ("one class", {"path": str(tmp / "oneclass")}, "class folders labels one class only \\('cat'\\)")
    )
    for name in ("cat/a.png", "dog/a.png", "test/bird/a.png"):
        picture(tmp / "testextra" / name, 10)
    cases.append(("test class never labeled", {"path": str(tmp / "testextra")}, "no labeled image has: bird"))
    picture(tmp / "emptypool" / "cat" / "a.png", 10)
    picture(tmp / "emptypool" / "dog" / "a.png", 10)
    (tmp / "emptypool" / "unlabeled").mkdir()
    cases.append(("empty pool folder", {"path": str(tmp / "emptypool")}, "no image files under .*unlabeled"))
    picture(tmp / "deadpool" / "cat" / "a.png", 10)
    picture(tmp / "deadpool" / "dog" / "a.png", 10)
    corrupt(tmp / "deadpool" / "unlabeled" / "x.jpg")
    cases.append(
        ("no readable pool image", {"path": str(tmp / "deadpool")}, "none of the 1 unlabeled images")
    )
    return cases


def test_imagefolder_bad_input_is_one_line_naming_the_fix(tmp_path: Path, registry) -> None:
    for what, options, needle in bad_folders(tmp_path):
        with pytest.raises(UsageError) as caught:
            registry.build("dataset", "imagefolder", tmp_path, False, options=options)
        message = str(caught.value)
        assert re.search(needle, message) and "\n" not in message, (what, message)
