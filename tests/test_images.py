"""sslkit.data.images: image files decoded into the run's uint8 tensor.

Every file is written here with PIL (PNG, JPEG, TIFF) in the mode under test; nothing is downloaded."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslkit import UsageError
from sslkit.data import images
from sslkit.data.images import (
    UnreadableImage,
    check_memory,
    common_mode,
    decode_image,
    find_images,
    image_bytes,
    is_grayscale,
    load_images,
)


def solid(path: Path, mode: str, value: object, size: tuple[int, int] = (12, 10), **save: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path, **save)
    return path


def noise(path: Path, seed: int, size: int = 8, mode: str = "RGB") -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


# ------------------------------------------------------------------------------------------ decode_image


def test_every_pil_mode_decodes_to_plausible_pixels(tmp_path: Path) -> None:
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(np.full((10, 12), 65535, np.uint16)).save(sixteen)  # opens as I;16
    half16 = tmp_path / "half16.png"
    Image.fromarray(np.full((10, 12), 32896, np.uint16)).save(
        half16
    )  # 32896 / 257 = 128: scaled, not clipped
    int32 = tmp_path / "int32.tif"
    Image.fromarray(np.full((10, 12), 65535, np.int32)).save(int32)  # opens as I
    floats = tmp_path / "float.tif"
    Image.fromarray(np.full((10, 12), 0.5, np.float32)).save(floats)  # F in 0..1
    palette = Image.new("P", (12, 10), 0)
    palette.putpalette([200, 30, 10, 10, 20, 230] + [0] * 762)
    palette.paste(1, (0, 5, 12, 10))  # top half colour 0 (red), bottom half colour 1 (blue)
    palette.save(tmp_path / "palette.png")
    palette.save(tmp_path / "palette_clear.png", transparency=1)  # the blue half becomes transparent
    cases = {
        solid(tmp_path / "gray.png", "L", 77): (77,),
        solid(tmp_path / "gray.jpg", "L", 77): (77,),
        solid(tmp_path / "gray_alpha.png", "LA", (77, 0)): (255,),  # fully transparent: white
        solid(tmp_path / "gray_alpha_opaque.png", "LA", (77, 255)): (77,),
        solid(tmp_path / "rgb.png", "RGB", (10, 200, 30)): (10, 200, 30),
        solid(tmp_path / "rgb.jpg", "RGB", (10, 200, 30), quality=95): (10, 200, 30),
        solid(tmp_path / "rgba_clear.png", "RGBA", (10, 200, 30, 0)): (255, 255, 255),
        solid(tmp_path / "rgba_half.png", "RGBA", (0, 0, 0, 128)): (127, 127, 127),  # half black on white
        solid(tmp_path / "cmyk.jpg", "CMYK", (0, 0, 0, 0)): (255, 255, 255),
        solid(tmp_path / "cmyk.tif", "CMYK", (255, 0, 0, 0)): (0, 255, 255),  # full cyan
        solid(tmp_path / "bilevel.png", "1", 1): (255,),
        sixteen: (255,),
        half16: (128,),
        int32: (255,),
        floats: (128,),
    }
    for path, expected in cases.items():
        for mode in ("L", "RGB"):
            array = decode_image(path, 6, mode)
            assert array.dtype == np.uint8 and array.shape == (1 if mode == "L" else 3, 6, 6), path.name
            centre = array[:, 3, 3].astype(int)
            want = np.array(expected if mode == "RGB" or len(expected) == 1 else [], dtype=int)
            if mode == "RGB" and len(expected) == 1:
                want = np.repeat(expected, 3)
            if mode == "L" and len(expected) == 3:  # ITU-R 601 luma of the colour
                r, g, b = expected
                want = np.array([round((299 * r + 587 * g + 114 * b) / 1000)])
            assert np.abs(centre - want).max() <= 3, (path.name, mode, centre, want)

    rgb = decode_image(tmp_path / "palette.png", 10, "RGB")  # a palette keeps its colours
    assert rgb[:, 1, 5].tolist() == [200, 30, 10] and rgb[:, 8, 5].tolist() == [10, 20, 230]
    clear = decode_image(tmp_path / "palette_clear.png", 10, "RGB")
    assert clear[:, 1, 5].tolist() == [200, 30, 10] and clear[:, 8, 5].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = Image.new("RGB", (32, 16), (255, 0, 0))  # wide: left half red, right half blue
    stored.paste((0, 0, 255), (16, 0, 32, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the left half ends up on top
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    stored.save(tmp_path / "plain.jpg", quality=95)
    turned = decode_image(tmp_path / "phone.jpg", 16, "RGB").astype(int)
    assert turned[0, 2, 8] > 200 and turned[2, 2, 8] < 50  # top: red
    assert turned[2, 13, 8] > 200 and turned[0, 13, 8] < 50  # bottom: blue
    plain = decode_image(tmp_path / "plain.jpg", 16, "RGB").astype(int)
    assert plain[0, 8, 2] > 200 and plain[2, 8, 13] > 200  # without the tag: left red, right blue


def test_large_jpeg_draft_and_resize_keep_the_picture(tmp_path: Path) -> None:
    big = Image.new("RGB", (400, 300), (20, 120, 220))
    big.paste((250, 250, 0), (0, 0, 200, 300))
    big.save(tmp_path / "big.jpg", quality=95)
    array = decode_image(tmp_path / "big.jpg", 20, "RGB").astype(int)  # decoded at 1/8 scale, then resized
    assert array.shape == (3, 20, 20)
    assert (
        np.abs(array[:, 10, 3] - [250, 250, 0]).max() < 12
        and np.abs(array[:, 10, 16] - [20, 120, 220]).max() < 12
    )


@pytest.mark.parametrize("source", ["RGB", "L"])
def test_plain_jpegs_decode_through_simplejpeg_to_the_same_pixels_as_pil(
    tmp_path: Path, monkeypatch, source
) -> None:
    """The fast path (no metadata) gives PIL's pixels exactly, at every draft scale; a JPEG with EXIF goes to PIL."""
    yy, xx = np.mgrid[0:200, 0:300]
    a = (np.sin(xx / 7.0) + np.cos(yy / 5.0)) * 60 + 128 + np.random.default_rng(0).normal(0, 10, (200, 300))
    pixels = np.stack([a, a[::-1], 255 - a], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).convert(source).save(tmp_path / "photo.jpg", quality=90)
    Image.fromarray(pixels).save(tmp_path / "tagged.jpg", quality=90, exif=Image.Exif())
    fast = {
        (m, s): decode_image(tmp_path / "photo.jpg", s, m) for m in ("L", "RGB") for s in (8, 28, 64, 200)
    }
    assert images._plain_jpeg(tmp_path / "photo.jpg", 28, "RGB") is not None
    assert images._plain_jpeg(tmp_path / "tagged.jpg", 28, "RGB") is None
    Image.new("CMYK", (40, 30), (50, 100, 150, 30)).save(tmp_path / "print.jpg")
    assert images._plain_jpeg(tmp_path / "print.jpg", 28, "RGB") is None  # PIL converts CMYK
    monkeypatch.setattr(images, "_plain_jpeg", lambda *args: None)  # PIL for every file
    for (mode, size), array in fast.items():
        assert np.array_equal(array, decode_image(tmp_path / "photo.jpg", size, mode)), (mode, size)


def test_unreadable_image_names_the_file_and_pickles(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableImage) as caught:
        decode_image(bad, 8, "RGB")
    assert caught.value.path == bad and str(caught.value).startswith(f"cannot decode image {bad} (")
    assert ": " in caught.value.reason and "\n" not in str(caught.value)
    again = pickle.loads(pickle.dumps(caught.value))
    assert str(again) == str(caught.value)
    with pytest.raises(UnreadableImage):
        is_grayscale(bad)
    truncated = noise(tmp_path / "cut.png", 0, size=64)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(UnreadableImage):
        decode_image(truncated, 8, "RGB")


def test_grayscale_from_headers(tmp_path: Path) -> None:
    gray_palette = Image.new("P", (8, 8), 3)
    gray_palette.putpalette([v for i in range(256) for v in (i, i, i)])
    gray_palette.save(tmp_path / "gp.png")
    gray = [
        solid(tmp_path / "l.png", "L", 1),
        solid(tmp_path / "l.jpg", "L", 1),
        solid(tmp_path / "la.png", "LA", (1, 2)),
        solid(tmp_path / "b.png", "1", 1),
        tmp_path / "gp.png",
    ]
    colour_palette = Image.new("P", (8, 8), 1)
    colour_palette.putpalette([0, 0, 0, 200, 30, 10] + [0] * 762)
    colour_palette.save(tmp_path / "p.gif")
    colour = [solid(tmp_path / "c.png", "RGB", (1, 1, 1)), tmp_path / "p.gif"]
    assert all(is_grayscale(f) for f in gray) and not any(is_grayscale(f) for f in colour)
    assert common_mode(gray) == "L" and common_mode([*gray, colour[0]]) == "RGB"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert common_mode([*gray, bad]) == "L"  # an unreadable file has no say


def test_common_mode_scans_long_lists_in_workers_and_caches(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(images, "CHUNK", 16)  # the first 16 in this process, the rest in the pool
    files = [solid(tmp_path / f"g{i:03d}.png", "L", i) for i in range(90)]
    cache = tmp_path / ".cache" / "gray.pt"
    assert common_mode(files, cache, workers=2) == "L" and cache.exists()
    scanned: list[int] = []
    real = images._scan_chunk
    monkeypatch.setattr(images, "_scan_chunk", lambda paths: scanned.append(len(paths)) or real(paths))
    assert common_mode(files, cache, workers=2) == "L" and scanned == [16]  # the first files only: a hit
    monkeypatch.setattr(images, "_scan_chunk", real)
    solid(files[-1], "RGB", (1, 2, 3))
    assert common_mode(files, cache, workers=2) == "RGB"  # a changed file: scanned again


# ----------------------------------------------------------------------------------------- find_images


def test_find_images_walks_folders_sorted_without_hidden_or_other_files(tmp_path: Path) -> None:
    a = solid(tmp_path / "pile" / "b" / "deep" / "x.PNG", "L", 1)
    b = solid(tmp_path / "pile" / "a.jpeg", "L", 1)
    solid(tmp_path / "pile" / ".hidden.png", "L", 1)
    solid(tmp_path / "pile" / ".sslkit-cache" / "y.png", "L", 1)
    (tmp_path / "pile" / "notes.txt").write_text("not an image")
    (tmp_path / "pile" / "data.csv").write_text("path,label\n")
    single = solid(tmp_path / "one.webp", "RGB", (1, 2, 3))
    (tmp_path / "readme.md").write_text("x")
    found = find_images(tmp_path / "pile", single, tmp_path / "readme.md", b)
    assert found == sorted([a, b, single])
    assert find_images(tmp_path / "pile" / "b") == [a]
    with pytest.raises(UsageError, match=r"nowhere\.png does not exist"):
        find_images(tmp_path / "nowhere.png")


# ------------------------------------------------------------------------------------------ load_images


def test_load_images_in_process_and_in_workers_agree_and_skip_unreadable(tmp_path: Path, capsys) -> None:
    files = [noise(tmp_path / "pile" / f"{i:03d}.png", i) for i in range(100)]  # > IN_PROCESS_MAX
    bad = tmp_path / "pile" / "050.png"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes())
    pooled, skipped = load_images(files, 8, "RGB", None, "pool images", skip_unreadable=True, workers=2)
    assert skipped == [bad] and pooled.shape == (99, 3, 8, 8) and pooled.dtype == torch.uint8
    assert "skipped 1 unreadable pool images" in capsys.readouterr().err
    expected = torch.stack([torch.from_numpy(decode_image(f, 8, "RGB")) for f in files if f != bad])
    assert torch.equal(pooled, expected)  # every image in its place after the gap closes
    serial, skipped = load_images(files, 8, "RGB", None, skip_unreadable=True, workers=1)
    assert skipped == [bad] and torch.equal(serial, expected)
    for workers in (1, 2):
        with pytest.raises(
            UsageError, match=rf"cannot decode image {re.escape(str(bad))} .*; delete or replace the file"
        ):
            load_images(files, 8, "RGB", None, workers=workers)


def test_cache_hit_invalidation_damage_and_unwritable(tmp_path: Path, monkeypatch) -> None:
    files = [noise(tmp_path / "imgs" / f"{i}.png", i) for i in range(6)]
    bad = tmp_path / "imgs" / "9.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    files.append(bad)
    cache = tmp_path / "imgs" / ".sslkit-cache" / "pool-8-RGB.pt"
    gone = tmp_path / "imgs" / "8.png"  # a dangling link: skipped like a broken file, not a traceback
    gone.symlink_to(tmp_path / "nowhere.png")
    files.append(gone)
    first, skipped = load_images(files, 8, "RGB", cache, skip_unreadable=True)
    assert cache.exists() and skipped == [bad, gone] and len(first) == 6
    gone.unlink()
    files.remove(gone)
    first, skipped = load_images(files, 8, "RGB", cache, skip_unreadable=True)
    assert skipped == [bad] and len(first) == 6
    assert not list(cache.parent.glob("*.tmp"))
    saved = torch.load(cache, weights_only=True)
    assert set(saved) == {"key", "images", "skipped"}

    calls = []
    real = images.decode_image

    def counting(path, size, mode):
        calls.append(Path(path))
        return real(path, size, mode)

    monkeypatch.setattr(images, "decode_image", counting)
    again, skipped = load_images(files, 8, "RGB", cache, skip_unreadable=True)
    assert calls == [] and torch.equal(again, first) and skipped == [bad]  # a hit decodes nothing
    with pytest.raises(UsageError, match=r"9\.jpg"):  # the cached skip is still an error when skipping is off
        load_images(files, 8, "RGB", cache)

    Image.new("RGB", (8, 8), (255, 0, 0)).save(files[0])  # changed: new content and modification time
    st = files[0].stat()
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    calls.clear()
    changed, _ = load_images(files, 8, "RGB", cache, skip_unreadable=True)
    assert (
        len(calls) == len(files)
        and changed[0, 0].float().mean() == 255
        and torch.equal(changed[1:], first[1:])
    )
    calls.clear()
    load_images(files, 8, "L", cache.with_name("pool-8-L.pt"), skip_unreadable=True)
    assert len(calls) == len(files)  # another mode is another cache

    cache.write_bytes(b"damaged")
    calls.clear()
    repaired, _ = load_images(files, 8, "RGB", cache, skip_unreadable=True)
    assert len(calls) == len(files) and torch.equal(repaired, changed)
    assert torch.load(cache, weights_only=True)["key"]  # rewritten

    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder would go")
    out, _ = load_images(files[:3], 8, "RGB", blocker / "cache.pt")
    assert len(out) == 3 and blocker.is_file()
    before = set(tmp_path.rglob("*"))
    load_images(files[:3], 8, "RGB", None)
    assert set(tmp_path.rglob("*")) == before  # cache=None writes nothing


def test_check_memory_refuses_up_front_with_the_fix(tmp_path: Path, monkeypatch) -> None:
    assert image_bytes(100_000, 3, 96) == 2_764_800_000
    with pytest.raises(UsageError) as caught:
        check_memory(10**9, 3, 1024, "unlabeled images")
    message = str(caught.value)
    assert "GB" in message and "lower --data-opt image_size or pass --pool-size N" in message
    assert "unlabeled images" in message and "\n" not in message

    monkeypatch.setattr(images, "available_memory", lambda: 24 * 10**9)
    check_memory(100_000, 3, 96, "images")  # 2.8 GB on a 24 GB machine: fine
    monkeypatch.setattr(images, "available_memory", lambda: 100)
    files = [noise(tmp_path / f"{i}.png", i) for i in range(3)]
    monkeypatch.setattr(images, "decode_image", lambda *a: pytest.fail("decoded before the memory check"))
    with pytest.raises(UsageError, match="pass --pool-size N"):
        load_images(files, 8, "RGB", None)
