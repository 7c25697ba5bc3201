"""A person's own folder, end to end: a few labeled images in class folders (or a CSV), an unlabeled pile, no test
split; the run trains, labels the pile in predictions.csv, keeps a classifier and never shows a test score."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from sslkit import load_run
from sslkit.cli import main

RUN = ["--pretext", "rotation", "--epochs", "1", "--batch-size", "64", "--device", "cpu"]
RUN += ["--tsne-points", "0"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, registry) -> tuple[Path, dict[str, int]]:
    """digits written out as files: 3 labeled PNGs per class, 300 unlabeled PNG/JPEG files two folders deep and
    one corrupt file among them; returns the folder and each pool file's hidden true class."""
    root = tmp_path_factory.mktemp("photos")
    bundle = registry.build("dataset", "digits", Path("."), False)
    images, labels = bundle.train.images[:, 0].numpy(), bundle.train.labels.tolist()
    seen: dict[int, int] = {}
    truth: dict[str, int] = {}
    for i, y in enumerate(labels[:600]):
        if seen.get(y, 0) < 3:
            seen[y] = seen.get(y, 0) + 1
            (root / "train" / str(y)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(root / "train" / str(y) / f"{i}.png")
        elif len(truth) < 300:
            name = f"unlabeled/batch{i % 2}/{i}.{'png' if i % 3 else 'jpg'}"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(root / name, quality=95)
            truth[name] = y
    (root / "unlabeled" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "unlabeled" / "README.txt").write_text("not an image: ignored")
    return root, truth


def test_a_folder_with_its_own_pile_and_no_test_split(
    folder: tuple[Path, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, truth = folder
    argv = ["run", "--data", "imagefolder", "--data-opt", f"path={root}", "--data-opt", "image_size=8"]
    assert main([*argv, *RUN, "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr()
    assert "no test split" in out.err and "30 labeled, 300 unlabeled, no test" in out.err
    (run_dir,) = (tmp_path / "runs").iterdir()
    for line in (
        f"predictions: {run_dir / 'predictions.csv'} (each of the 300",
        "cross-validated accuracy, not a test",
    ):
        assert line in out.err  # a run without a test split ends saying what it holds
    assert f"next: sslkit predict {run_dir} FILES" in out.err
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["labels"] == "all"  # every given label, none held out
    assert config["data"]["labeled"] == 30 and config["data"]["skipped"] == ["unlabeled/broken.jpg"]
    assert config["info"]["in_chans"] == 1 and config["data"]["labels_from"] == "class folders"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["results"] == {} and "baselines" not in results  # nothing measured on training labels
    classifier = json.loads((run_dir / "classifier.json").read_text())
    assert classifier["source"] == "linear probe" and 0 < classifier["estimate"]["cv_accuracy"] <= 1
    assert "not a test score" in classifier["estimate"]["what"]
    rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
    assert sorted(r["path"] for r in rows) == sorted(truth)  # the pile, by file, the broken one skipped
    right = sum(int(r["class"]) == truth[r["path"]] for r in rows) / len(rows)
    assert right > 0.3  # ten classes: chance is 0.1
    run = load_run(run_dir)
    files = [root / r["path"] for r in rows[:20]]
    kept, probs, skipped = run.predict_files(files)
    assert kept == files and not skipped
    assert [run.classes[i] for i in probs.argmax(1)] == [r["class"] for r in rows[:20]]


def test_labels_from_a_csv_go_straight_back_in(
    folder: tuple[Path, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, truth = folder
    names = sorted(truth)
    labeled = [n for n in names if truth[n] in (0, 1, 2)][:12]
    sheet = root / "to-label.csv"
    lines = ["path,label,guess"] + [f"{n},{'abc'[truth[n]] if n in labeled else ''},x" for n in names[:100]]
    sheet.write_text("\n".join(lines) + "\n")
    argv = ["run", "--data", "imagefolder", "--data-opt", f"path={root}", "--data-opt", "labels=to-label.csv"]
    argv += ["--data-opt", "image_size=8", "--labels", "6"]
    assert main([*argv, *RUN, "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["labels"] == 6 and config["data"]["labeled"] == 6  # fewer asked: fewer used
    assert config["data"]["classes"] == ["a", "b", "c"]
    assert config["data"]["labels_csv_sha256"] == hashlib.sha256(sheet.read_bytes()).hexdigest()
    rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
    assert {r["class"] for r in rows} <= {"a", "b", "c"}
    assert not {r["path"] for r in rows} & set(labeled[:0])
    capsys.readouterr()
    assert main(["suggest", str(run_dir), "--out", str(sheet)]) == 2  # the run's own labels are kept
    assert "was trained on the labels in" in capsys.readouterr().err
    original = sheet.read_text()
    sheet.write_text(original.replace(",,x", ",a,x", 1))  # one more label: no longer the run's labels
    assert main(["suggest", str(run_dir), "--out", str(tmp_path / "next.csv")]) == 2
    assert f"differ from the ones it was trained on: CSV {sheet} changed since" in capsys.readouterr().err
    sheet.write_text(original.replace(",c,", ",d,"))  # a class renamed: the same labeled rows, another name
    assert main(["suggest", str(run_dir), "--out", str(tmp_path / "next.csv")]) == 2
    assert "differ from the ones it was trained on" in capsys.readouterr().err
    sheet.write_text(original)
    # the six labels the run left out (--labels 6) are still labels: listed with the others, never picked
    after = tmp_path / "next.csv"
    assert main(["suggest", str(run_dir), "--n", "5", "--out", str(after)]) == 0
    rows = list(csv.DictReader(after.open()))
    assert sorted(r["path"] for r in rows[:12]) == labeled
    assert all(r["label"] for r in rows[:12]) and len(rows) == 17
    assert not {r["path"] for r in rows[12:]} & set(labeled)
    # a sheet filled in (a new label, or one corrected) but not trained on yet is not written over
    fresh = after.read_text()
    picked, known = rows[12]["path"], rows[0]
    other = next(c for c in "abc" if c != known["label"])
    for edited in (
        fresh.replace(f"{picked},,", f"{picked},a,", 1),
        fresh.replace(f"{known['path']},{known['label']},", f"{known['path']},{other},", 1),
    ):
        assert edited != fresh
        after.write_text(edited)
        assert main(["suggest", str(run_dir), "--n", "5", "--out", str(after)]) == 2
        assert "holds 1 label(s) this run was not trained on" in capsys.readouterr().err
    assert main([*argv[:-2], "--labels", "500", *RUN, "--out", str(tmp_path)]) == 2
    assert "more than the 12 labeled images" in capsys.readouterr().err


def test_no_labels_yet_then_suggest_then_the_filled_sheet_goes_back_in(
    folder: tuple[Path, dict[str, int]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, truth = folder
    pile = tmp_path / "pile"
    for name in truth:  # only the pile: no class folders, no labels
        (pile / name).parent.mkdir(parents=True, exist_ok=True)
        (pile / name).write_bytes((source / name).read_bytes())
    monkeypatch.chdir(tmp_path)  # the folder as a person types it, beside them
    argv = ["run", "--data", "imagefolder", "--data-opt", "path=pile", "--data-opt", "image_size=8"]
    assert main([*argv, "--data-opt", "flips=false", *RUN, "--out", str(tmp_path / "runs")]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the run is read again from another directory
    err = capsys.readouterr().err
    assert "no labels yet: training rotation" in err and "next: sslkit suggest" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "classifier.json").exists() and not (run_dir / "predictions.csv").exists()
    assert main(["predict", str(run_dir), str(pile)]) == 2
    assert "trained without labels, so it has no classifier; `sslkit suggest" in capsys.readouterr().err

    sheet = pile / "to-label.csv"
    assert main(["suggest", str(run_dir), "--n", "12", "--out", str(sheet)]) == 0
    # the next command with every option the run was given, ready to paste
    options = f"path={pile} --data-opt image_size=8 --data-opt flips=false --data-opt labels={sheet}"
    assert f"then: sslkit run --data imagefolder --data-opt {options}\n" in capsys.readouterr().out
    rows = list(csv.DictReader(sheet.open()))
    assert len(rows) == 12 and len({r["path"] for r in rows}) == 12 and all(r["label"] == "" for r in rows)
    page = sheet.with_suffix(".html").read_text()
    assert page.count("<img") == 12 and rows[0]["path"] in page
    first = sheet.read_text()
    assert main(["suggest", str(run_dir), "--n", "12", "--out", str(sheet)]) == 0
    assert sheet.read_text() == first  # the same run, strategy and seed: the same suggestions
    classes_seen = {truth[r["path"]] for r in rows}
    assert len(classes_seen) >= 6  # twelve typical picks of ten classes; random picks see fewer

    for bad, message in (
        (["--n", "0"], "--n must be"),
        (["--n", "5000"], "cannot pick 5000 images to label from 300 unlabeled ones"),
    ):
        assert main(["suggest", str(run_dir), *bad, "--out", str(tmp_path / "x.csv")]) == 2
        assert message in capsys.readouterr().err
    assert main(["suggest", str(run_dir), "--strategy", "typiclus", "--out", str(tmp_path / "x.csv")]) == 2
    assert "typiclust" in capsys.readouterr().err  # did you mean

    filled = [f"{r['path']},{truth[r['path']]}" for r in rows]
    sheet.write_text("path,label\n" + "\n".join(filled) + "\n")
    argv = ["run", "--data", "imagefolder", "--data-opt", f"path={pile}", "--data-opt", "labels=to-label.csv"]
    assert (
        main([*argv, "--data-opt", "image_size=8", *RUN, "--out", str(tmp_path / "runs2")]) == 0
    )  # in pile/
    (second,) = (tmp_path / "runs2").iterdir()
    config = json.loads((second / "config.json").read_text())
    assert config["data"]["labeled"] == 12 and config["data"]["pool"] == 300 - 12
    assert len(list(csv.DictReader((second / "predictions.csv").open()))) == 300 - 12


def test_interrupting_a_folder_runs_stage_names_the_run_itself(
    folder: tuple[Path, dict[str, int]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sslkit.engine.loop import Trainer

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupt)  # in the recipe's rotation stage, the first to train
    root, _ = folder
    argv = ["run", "--data", "imagefolder", "--data-opt", f"path={root}", "--data-opt", "image_size=8"]
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path)]) == 130
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "pretrain" / "config.json").exists()  # the stage had started
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(
        f"`sslkit run --resume {run_dir}` continues from the start (no checkpoint was written yet)"
    )
