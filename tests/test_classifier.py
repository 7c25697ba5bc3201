"""The run's classifier: folding heads, predictions, ``sslkit predict`` and ``sslkit export`` (ONNX)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sslkit import Classifier, DataInfo, UsageError, fold_affine, load_run
from sslkit.cli import main
from sslkit.config import labels_spec, parse_labels
from sslkit.rundir import PREDICTIONS, predictions_csv


def test_fold_affine_reproduces_a_weight_normed_head_with_dropout_and_refuses_a_nonlinear_one() -> None:
    from sslkit_builtins.encoders.wn_mlp import GaussianNoise, WeightNormLinear

    torch.manual_seed(0)
    linear = WeightNormLinear(16, 5)
    with torch.no_grad():
        linear.scale.uniform_(0.5, 2)
        linear.bias.uniform_(-1, 1)
        linear.initialized.fill_(True)
    head = nn.Sequential(nn.Dropout(0.5), GaussianNoise(0.3), linear).train()
    folded = fold_affine(head, 16)
    x = torch.randn(32, 16)
    head.eval()
    assert torch.allclose(folded(x), head(x), atol=1e-5)
    assert head.training is False and isinstance(folded, nn.Linear)
    with pytest.raises(ValueError, match="not affine"):
        fold_affine(nn.Sequential(nn.Linear(16, 5), nn.ReLU()), 16)


def test_classifier_takes_uint8_or_unit_floats_and_normalizes_itself() -> None:
    info = DataInfo("t", ["a", "b", "c"], 1, 4, (0.5,), (0.25,))
    encoder = nn.Flatten()
    encoder.feature_dim = 16
    model = Classifier(encoder, nn.Linear(16, 3), info)
    images = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8)
    by_hand = model.head(((images.float() / 255 - 0.5) / 0.25).flatten(1))
    assert torch.allclose(model(images), by_hand, atol=1e-6)
    assert torch.allclose(model(images.float() / 255), by_hand, atol=1e-6)
    probs = model.probabilities(images, batch_size=4)  # two batches
    assert torch.allclose(probs, by_hand.softmax(1), atol=1e-6)


def test_predictions_csv_names_the_class_its_confidence_and_the_runners_up() -> None:
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    text = predictions_csv(["a.png", "dir/b, c.jpg"], probs, ["cat", "dog", "eel"], top_k=3)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0] == {
        "path": "a.png",
        "class": "dog",
        "confidence": "0.7000",
        "class_2": "eel",
        "confidence_2": "0.2000",
        "class_3": "cat",
        "confidence_3": "0.1000",
    }
    assert rows[1]["path"] == "dir/b, c.jpg" and rows[1]["class"] == "cat"  # a comma in a name is quoted
    header = next(csv.reader(io.StringIO(predictions_csv(["x"], probs[:1], ["a", "b", "c"], 1))))
    assert header == ["path", "class", "confidence"]


def test_one_labels_parser_and_the_default_depends_on_whether_the_data_brings_its_own_split() -> None:
    assert parse_labels("all") == "all" and parse_labels("40") == 40 and parse_labels(7) == 7
    assert parse_labels("0") == 0  # none yet: a label-free run
    for bad in ("-3", "many", 2.5, True):
        with pytest.raises(UsageError, match="0 for none yet"):
            parse_labels(bad)
    assert labels_spec(None, labels_given=False) == 100
    assert labels_spec(None, labels_given=True) is None  # every label the person gave
    assert labels_spec(30, labels_given=True) == 30 and labels_spec("all", labels_given=False) is None


ENCODERS = [  # every built-in encoder family, small
    ("convnet", 1, 28, {}),
    ("wn-mlp", 1, 28, {"widths": [64, 32]}),
    ("dcgan-disc", 3, 32, {"width": 8}),
    ("resnet18", 3, 32, {}),
]


@pytest.mark.parametrize(("name", "chans", "size", "options"), ENCODERS, ids=[e[0] for e in ENCODERS])
def test_onnx_export_matches_the_classifier_for_every_builtin_encoder(
    registry, tmp_path: Path, name: str, chans: int, size: int, options: dict
) -> None:
    import onnxruntime

    from sslkit.export import export_onnx

    torch.manual_seed(0)
    encoder = registry.build("encoder", name, chans, size, options=options).eval()
    info = DataInfo("t", [f"c{i}" for i in range(4)], chans, size, (0.4,) * chans, (0.3,) * chans)
    model = Classifier(encoder, nn.Linear(encoder.feature_dim, 4), info)
    path = export_onnx(model, tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randint(0, 256, (3, chans, size, size), dtype=torch.uint8)  # a batch size not exported
    (ours,) = session.run(["probabilities"], {"images": images.numpy()})
    assert np.abs(ours - model.probabilities(images).numpy()).max() <= 1e-4
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == info.classes and meta["image_size"] == str(size)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    argv = ["run", "--data", "digits", "--pretext", "rotation", "--epochs", "1", "--device", "cpu"]
    argv += ["--eval-opt", "linear.c_grid=[1.0]", "--no-baselines", "--tsne-points", "0", "--out", str(out)]
    assert main(argv) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def test_a_run_keeps_the_probe_as_its_classifier_and_labels_its_pool(digits_run: Path, registry) -> None:
    record = json.loads((digits_run / "classifier.json").read_text())
    assert record["source"] == "linear probe" and record["classes"] == [str(i) for i in range(10)]
    rows = list(csv.DictReader((digits_run / PREDICTIONS).open()))
    config = json.loads((digits_run / "config.json").read_text())
    assert len(rows) == config["data"]["pool"] and rows[0]["path"].startswith("train[")
    run = load_run(digits_run)
    bundle = registry.build("dataset", "digits", Path("."), False)
    accuracy = float((run.predict(bundle.test.images).argmax(1) == bundle.test.labels).float().mean())
    results = json.loads((digits_run / "results.json").read_text())["results"]
    assert accuracy == pytest.approx(results["linear"]["accuracy"], abs=1e-6)  # the probe scored
    pool_index = [int(r["path"][6:-1]) for r in rows[:50]]
    expected = run.predict(bundle.train.images[pool_index]).argmax(1)
    assert [r["class"] for r in rows[:50]] == [run.classes[i] for i in expected]


def test_predict_reads_files_as_the_run_did_and_export_agrees(
    digits_run: Path, registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    bundle = registry.build("dataset", "digits", Path("."), False)
    folder = tmp_path / "new" / "deeper"
    folder.mkdir(parents=True)
    for i in range(12):
        Image.fromarray(bundle.test.images[i, 0].numpy()).save(folder / f"{i:02d}.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "00.png").rename(folder / "photo [0].png")  # a name that reads as a glob pattern
    assert main(["predict", str(digits_run), str(folder / "photo [0].png")]) == 0
    assert "photo [0].png" in capsys.readouterr().out
    (folder / "photo [0].png").rename(folder / "00.png")
    assert main(["predict", str(digits_run), str(tmp_path / "new"), "--top-k", "3"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    run = load_run(digits_run)
    probs = run.predict(bundle.test.images[:12])
    assert [Path(r["path"]).name for r in rows] == [f"{i:02d}.png" for i in range(12)]
    assert [r["class"] for r in rows] == [run.classes[i] for i in probs.argmax(1)]
    assert np.allclose([float(r["confidence"]) for r in rows], probs.max(1).values.numpy(), atol=1e-4)
    assert "class_3" in rows[0]
    out = tmp_path / "not-yet" / "labels.csv"  # a folder that does not exist yet is made
    assert main(["predict", str(digits_run), str(folder), "--out", str(out)]) == 0 and out.exists()

    assert main(["export", str(digits_run), "--out", str(tmp_path / "m.onnx")]) == 0
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (onnx_probs,) = session.run(None, {"images": bundle.test.images[:12].numpy()})
    assert np.abs(onnx_probs - probs.numpy()).max() <= 1e-4


def test_predict_and_export_refuse_bad_input_in_one_line(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg")
    cases = [
        (["predict", str(digits_run), str(empty)], "no image files"),
        (
            ["predict", str(digits_run), str(tmp_path / "junk.jpg")],
            "none of the 1 image files could be decoded",
        ),
        (["predict", str(digits_run), str(tmp_path / "nope.png")], "no such file"),
        (["predict", str(digits_run), str(empty), "--top-k", "0"], "--top-k"),
        (["predict", str(tmp_path), str(empty)], "not an sslkit run directory"),
        (["export", str(digits_run), "--format", "tflite"], "supported: onnx"),
        (["export", str(digits_run), "--out", str(tmp_path / "model.pt")], "name it *.onnx"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and err[-1].startswith("sslkit: error") and "Traceback" not in "".join(err)
        assert len(err) == (2 if "junk" in argv[-1] else 1)  # the unreadable file is named as it is skipped
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((digits_run / "config.json").read_text())
    assert main(["predict", str(unfinished), str(empty)]) == 2
    assert "has not finished" in capsys.readouterr().err
