"""The bad-input catalog: every case gets one line naming the problem and the fix, exit code 2, no traceback,
and nothing written. Cases that need a prepared file take it from the ``prepare`` function of their row."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from sslkit.cli import main


def _file(name: str, text: str) -> Callable[[Path], list[str]]:
    def prepare(tmp: Path) -> list[str]:
        (tmp / name).write_text(text)
        return [str(tmp / name)]

    return prepare


def _truncated_fashion(tmp: Path) -> list[str]:
    from conftest import DATA_ROOT

    if DATA_ROOT is None:
        pytest.skip("needs Fashion-MNIST")
    raw = tmp / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (DATA_ROOT / "FashionMNIST" / "raw").iterdir():
        if "train-images" in path.name:
            (raw / path.name).write_bytes(path.read_bytes()[:5000])
        else:
            shutil.copy(path, raw / path.name)
    return [str(tmp / "data")]


def _run_dir_without_checkpoint_but_corrupt(tmp: Path) -> list[str]:
    run_dir = tmp / "fake-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{not json")
    return [str(run_dir)]


def _not_an_image_folder(tmp: Path) -> list[str]:
    folder = tmp / "pets" / "cat"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not an image")
    return [str(tmp / "pets")]


def _fake_jpeg_folder(tmp: Path) -> list[str]:
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp / "pets" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), "white").save(tmp / "pets" / name / "ok.jpg")
    (tmp / "pets" / "cat" / "fake.jpg").write_text("not a jpeg")
    return [str(tmp / "pets")]


# (id, argv with {0}, {1}... filled from prepare(), expected message fragment, prepare)
CASES: list[tuple[str, list[str], str, Callable[[Path], list[str]] | None]] = [
    ("unknown pretext", ["run", "--pretext", "rotatoin"], "did you mean 'rotation'", None),
    ("unknown encoder", ["run", "--encoder", "convnett"], "unknown encoder 'convnett'; available:", None),
    ("unknown dataset", ["run", "--data", "mnsit"], "did you mean 'mnist'", None),
    ("unknown evaluator", ["run", "--eval", "linear,knnn"], "unknown evaluator 'knnn'", None),
    ("labels negative", ["run", "--labels=-3"], "--labels must be a count (0 for none yet) or 'all'", None),
    ("labels not a number", ["run", "--labels", "ten"], "--labels must be a count (0 for none yet)", None),
    ("labels beyond the split", ["run", "--labels", "5000"], "more than the 1300 training images", None),
    (
        "labels per class zero",
        ["run", "--labels-per-class", "0"],
        "--labels-per-class must be positive",
        None,
    ),
    ("unknown device", ["run", "--device", "tpu"], "unknown device 'tpu'", None),
    ("negative epochs", ["run", "--epochs", "-1"], "--epochs must be >= 0", None),
    ("negative lr", ["run", "--lr", "-1"], "--lr must be positive", None),
    ("sync batchnorm, one process", ["run", "--sync-batchnorm"], "this run is one process: drop it", None),
    (
        "eval without labels",
        ["run", "--labels", "0", "--eval", "knn"],
        "evaluates nothing: drop --eval",
        None,
    ),
    ("batch size zero", ["run", "--batch-size", "0"], "--batch-size must be positive", None),
    ("bad on-nan choice", ["run", "--on-nan", "retry"], "invalid choice: 'retry'", None),
    ("option without =", ["run", "--pretext-opt", "augment"], "expects KEY=VALUE", None),
    (
        "unknown pretext option",
        ["run", "--pretext-opt", "temp=1"],
        "has no option 'temp'; its options:",
        None,
    ),
    ("wrong option type", ["run", "--pretext-opt", "align=3"], "fixmatch.align must be", None),
    ("option out of range", ["run", "--encoder-opt", "width=-1"], "rejected its options (width=-1", None),
    (
        "unknown dataset option",
        ["run", "--data-opt", "size=3"],
        "dataset 'digits' has no option 'size'",
        None,
    ),
    ("eval option without eval", ["run", "--eval-opt", "knn.k=3"], "not in --eval", None),
    ("config file missing", ["run", "--config", "/nonexistent/run.toml"], "does not exist", None),
    ("config not TOML", ["run", "--config", "{0}"], "is not valid TOML", _file("a.toml", "epochs = = 3")),
    (
        "config unknown key",
        ["run", "--config", "{0}"],
        "unknown setting 'epoch'",
        _file("b.toml", "epoch = 3"),
    ),
    ("config wrong type", ["run", "--config", "{0}"], "epochs", _file("c.toml", 'epochs = "ten"')),
    (
        "config out of range",
        ["run", "--config", "{0}"],
        "--lr must be positive",
        _file("d.toml", "lr = -0.1"),
    ),
    (
        "dataset missing offline",
        ["run", "--data", "mnist", "--data-root", "{0}", "--no-download"],
        "not found under",
        lambda tmp: [str(tmp)],
    ),
    (
        "truncated dataset file",
        ["run", "--data", "fashion-mnist", "--data-root", "{0}", "--no-download"],
        "train-images-idx3-ubyte",
        _truncated_fashion,
    ),
    (
        "resume a missing directory",
        ["run", "--resume", "/nonexistent/run"],
        "not an sslkit run directory",
        None,
    ),
    (
        "resume a damaged run",
        ["run", "--resume", "{0}"],
        "is not valid JSON",
        _run_dir_without_checkpoint_but_corrupt,
    ),
    ("resume with other flags", ["run", "--resume", "x", "--epochs", "3"], "drop --epochs", None),
    (
        "resume with --lr",
        ["run", "--resume", "x", "--lr", "0.01", "--eval", "knn"],
        "drop --eval, --lr",
        None,
    ),
    ("eval a non-run", ["eval", "/nonexistent/run", "--eval", "linear"], "not an sslkit run directory", None),
    ("report a non-run", ["report", "/nonexistent/run"], "not an sslkit run directory", None),
    ("bench suite missing", ["bench", "/nonexistent/suite.toml"], "/nonexistent/suite.toml", None),
    (
        "image folder without images",
        ["run", "--data", "imagefolder", "--data-opt", "path={0}"],
        "no image files under",
        _not_an_image_folder,
    ),
    (
        "file that is not an image",
        ["run", "--data", "imagefolder", "--data-opt", "path={0}"],
        "fake.jpg",
        _fake_jpeg_folder,
    ),
]


@pytest.mark.parametrize(("argv", "expected", "prepare"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    argv: list[str], expected: str, prepare: Callable[[Path], list[str]] | None, tmp_path: Path, capsys
) -> None:
    filled = prepare(tmp_path) if prepare else []
    argv = [a.format(*filled) for a in argv]
    out = tmp_path / "runs"
    if argv[0] == "run" and "--resume" not in argv:
        argv += ["--data", "digits"] if "--data" not in argv else []
        argv += ["--out", str(out)]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("sslkit: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out.exists(), "a run directory was written for bad input"

    # caches of data decoded before the failure (the XDG cache, .sslkit-cache) are not results: they may stay
    def kept(p: Path) -> bool:
        return not any("cache" in part for part in p.parts)

    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert [p for p in after if kept(p)] == [p for p in before if kept(p)]


def test_the_catalog_is_large_enough() -> None:
    assert len(CASES) >= 25


def test_debug_shows_the_traceback() -> None:
    with pytest.raises(Exception, match="did you mean 'rotation'"):
        main(["run", "--pretext", "rotatoin", "--debug"])


def test_cuda_asked_for_without_cuda(capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "--device", "cuda"]) == 2
    assert "CUDA is not available here; use --device cpu" in capsys.readouterr().err


def test_version(capsys) -> None:
    import sslkit

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sslkit {sslkit.__version__}"
