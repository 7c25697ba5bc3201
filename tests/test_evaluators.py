"""Evaluators (knn, finetune, voc-map), the image-file datasets (voc2007, imagefolder) and `sslkit eval`.

Numbers are checked against scikit-learn or a hand computation; datasets are tiny files written here in the real
on-disk formats (JPEGs, VOC XML annotations with 'difficult' flags, ImageSets lists, class folders)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sslkit_builtins.evaluators.knn import KNN, knn_votes
from sslkit_builtins.evaluators.metrics import average_precision, voc07_average_precision

from sslkit import DataInfo, EvalContext, Split, UsageError
from sslkit.cli import main
from sslkit.probe import standardization

CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip


def _ctx(bank: torch.Tensor, bank_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor, k: int = 5):
    """An EvalContext whose features are given directly (images are placeholders of the right count)."""
    feats = {"labeled": bank, "test": test}
    info = DataInfo("t", [str(i) for i in range(k)], 1, 4, (0.5,), (0.25,))
    img = lambda n: torch.zeros(n, 1, 4, 4, dtype=torch.uint8)  # noqa: E731
    return EvalContext(
        torch.nn.Identity(),
        None,
        info,
        Split(img(len(bank)), bank_y),
        Split(img(len(test)), test_y),
        feats.__getitem__,
        torch.device("cpu"),
        None,
        0,
    )


# ------------------------------------------------------------------------------------------- k-NN


@pytest.mark.parametrize("weighting", ["uniform", "exp"])
def test_knn_agrees_with_sklearn_brute_force_cosine(weighting: str) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(6, 24, generator=gen)
    bank_y = torch.randint(0, 6, (400,), generator=gen)
    test_y = torch.randint(0, 6, (300,), generator=gen)
    bank = centers[bank_y] + 1.5 * torch.randn(400, 24, generator=gen)  # continuous: no distance ties
    test = centers[test_y] + 1.5 * torch.randn(300, 24, generator=gen)
    t = 0.07
    votes = knn_votes(bank, bank_y, test, [1, 7, 20, 200], 6, weighting, t, batch_size=64)
    for k, v in votes.items():
        weights = "uniform" if weighting == "uniform" else (lambda d: np.exp((1 - d) / t))
        ref = KNeighborsClassifier(k, weights=weights, algorithm="brute", metric="cosine")
        ref.fit(bank.double().numpy(), bank_y.numpy())
        expected = ref.predict(test.double().numpy())
        assert (v.argmax(1).numpy() == expected).all(), f"k={k}"


def test_frozen_features_that_are_not_finite_are_refused_naming_the_split() -> None:
    from sslkit.features import FeatureCache

    class HalfBroken(torch.nn.Module):
        feature_dim = 3

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = x.flatten(1)[:, :3].clone()
            out[::2] = float("nan")
            return out

    info = DataInfo("t", ["a", "b"], 1, 4, (0.5,), (0.5,))
    split = Split(torch.zeros(6, 1, 4, 4, dtype=torch.uint8), torch.zeros(6, dtype=torch.long))
    cache = FeatureCache(HalfBroken(), {"test": split}, info, torch.device("cpu"))
    with pytest.raises(UsageError, match="features of 3 of 6 test images are NaN or infinite"):
        cache("test")


def test_knn_exp_votes_do_not_overflow_at_tiny_temperatures() -> None:
    gen = torch.Generator().manual_seed(3)
    bank, bank_y = torch.randn(50, 8, generator=gen), torch.arange(50) % 5
    queries = bank[:10] + 0.01 * torch.randn(10, 8, generator=gen)
    votes = knn_votes(bank, bank_y, queries, [5], 5, "exp", temperature=1e-4)[5]
    assert torch.isfinite(votes).all()
    assert torch.equal(votes.argmax(1), bank_y[:10])  # the nearest neighbour dominates, as T -> 0 it should


def test_knn_evaluator_reports_each_k_and_refuses_k_larger_than_the_bank() -> None:
    gen = torch.Generator().manual_seed(1)
    bank, test = torch.randn(30, 8, generator=gen), torch.randn(50, 8, generator=gen)
    bank_y, test_y = torch.arange(30) % 5, torch.arange(50) % 5
    ctx = _ctx(bank, bank_y, test, test_y)
    result = KNN(k="3,10", weighting="uniform").evaluate(ctx)
    votes = knn_votes(bank, bank_y, test, [3, 10], 5, "uniform")
    assert result.metrics["accuracy"] == result.metrics["accuracy_k3"]
    assert result.metrics["accuracy_k10"] == pytest.approx(
        float((votes[10].argmax(1) == test_y).double().mean())
    )
    auto = KNN().evaluate(ctx)  # default: k=20 (200 does not fit a bank of 30, and the details say so)
    assert list(auto.details["k"]) == [20] and "200" in auto.details["note"]
    with pytest.raises(UsageError, match="k=50 is larger than the bank of 30") as err:
        KNN(k="5,50").evaluate(ctx)
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="positive integers"):
        KNN(k="five")


# --------------------------------------------------------------------------------- average precision


def test_average_precision_matches_sklearn_and_ignores_difficult() -> None:
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for trial in range(20):
        target = rng.choice([1.0, 0.0, -1.0], size=60, p=[0.3, 0.6, 0.1])
        target[0] = 1.0
        scores = rng.normal(size=60)
        if trial % 2:
            scores = np.round(scores, 1)  # ties: one threshold per distinct score, as scikit-learn
        keep = target >= 0
        expected = average_precision_score(target[keep], scores[keep])
        got = average_precision(torch.from_numpy(scores), torch.from_numpy(target))
        assert got == pytest.approx(expected, abs=1e-12)


def test_standardization_gives_features_constant_on_the_labels_no_weight() -> None:
    labeled = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 2.0001], [5.0, 5.0, 2.0]])  # 3rd: nearly constant
    mean, std = standardization(labeled)
    assert torch.allclose(mean, torch.tensor([3.0, 5.0, 6.0001 / 3]))
    assert std[0] == 2.0 and torch.isinf(std[1:]).all()
    test = torch.tensor([[4.0, 9.0, 3.0]])  # a constant feature that varies on test images adds nothing
    assert torch.equal((test - mean) / std, torch.tensor([[0.5, 0.0, 0.0]]))


def test_voc07_eleven_point_ap_by_hand() -> None:
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    target = torch.tensor([1.0, 0.0, -1.0, 1.0, 0.0, 1.0])
    # kept, ranked: + - + - + ; (precision, recall): (1, 1/3) (1/2, 1/3) (2/3, 2/3) (1/2, 2/3) (3/5, 1)
    # levels 0, .1, .2, .3 -> max precision 1; .4, .5, .6 -> 2/3; .7, .8, .9, 1 -> 3/5
    assert voc07_average_precision(scores, target) == pytest.approx((4 * 1 + 3 * 2 / 3 + 4 * 0.6) / 11)
    assert average_precision(scores, target) == pytest.approx((1 + 2 / 3 + 0.6) / 3)
    no_positive = torch.tensor([0.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    assert average_precision(scores, no_positive) is None
    assert voc07_average_precision(scores, no_positive) is None


# -------------------------------------------------------------------------------- VOC 2007 on disk


def _jpeg(path: Path, rng: np.random.Generator, color: tuple[int, int, int], size=(50, 40)) -> None:
    pixels = np.clip(rng.normal(color, 30, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)


def _annotation(path: Path, image_id: str, objects: list[tuple[str, int]]) -> None:
    body = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{d}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
        for n, d in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
        f"<size><width>50</width><height>40</height><depth>3</depth></size>{body}</annotation>"
    )


def make_voc(root: Path, n_train: int = 40, n_test: int = 20) -> dict[str, list[float]]:
    """A tiny VOCdevkit: each image has three classes; in test, 'sheep' appears only as a difficult object."""
    rng = np.random.default_rng(0)
    voc = root / "VOCdevkit" / "VOC2007"
    targets = {}
    for split, ids in (("trainval", range(n_train)), ("test", range(n_train, n_train + n_test))):
        names = []
        for i in ids:
            image_id = f"{i:06d}"
            objs = [(CLASSES[(i + j) % 20], 0) for j in (0, 3, 7)]
            if split == "test":
                objs = [(n, 1 if n == "sheep" else 0) for n, _ in objs]
            if i == 2:
                objs += [("person", 1), ("car", 1)]  # present only as difficult objects: -1
            target = [0.0] * 20
            for n, d in objs:
                c = CLASSES.index(n)
                target[c] = 1.0 if d == 0 else (target[c] or -1.0)
            targets[image_id] = target
            color = tuple(int(v) for v in rng.integers(0, 255, 3))
            _jpeg(voc / "JPEGImages" / f"{image_id}.jpg", rng, color, size=(50 + i % 7, 40))
            _annotation(voc / "Annotations" / f"{image_id}.xml", image_id, objs)
            names.append(image_id)
        listing = voc / "ImageSets" / "Main" / f"{split}.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join(names) + "\n")
    return targets


def test_voc2007_reads_the_devkit_layout_with_difficult_flags(tmp_path: Path, registry) -> None:
    expected = make_voc(tmp_path)
    bundle = registry.build("dataset", "voc2007", tmp_path, False, options={"image_size": 32})
    assert bundle.info.multilabel and bundle.info.classes == CLASSES and bundle.info.in_chans == 3
    assert tuple(bundle.train.images.shape) == (40, 3, 32, 32) and bundle.train.images.dtype == torch.uint8
    assert bundle.train.labels.tolist() == [expected[f"{i:06d}"] for i in range(40)]
    assert bundle.train.labels[2, CLASSES.index("person")] == -1  # only a difficult person in image 2
    assert (bundle.test.labels[:, CLASSES.index("sheep")] <= 0).all()
    cache = tmp_path / "VOCdevkit" / "VOC2007" / "sslkit-cache" / "trainval-32.pt"
    assert cache.exists()
    stamp = cache.stat().st_mtime_ns
    again = registry.build("dataset", "voc2007", tmp_path, False, options={"image_size": 32})
    assert cache.stat().st_mtime_ns == stamp and torch.equal(again.train.images, bundle.train.images)


def test_voc_map_end_to_end_from_files_through_the_cli(tmp_path: Path, capsys) -> None:
    make_voc(tmp_path)
    args = ["run", "--pretext", "rotation", "--encoder", "convnet", "--data", "voc2007"]
    args += ["--data-root", str(tmp_path), "--data-opt", "image_size=32", "--epochs", "1", "--device", "cpu"]
    args += ["--out", str(tmp_path / "runs"), "--eval", "voc-map", "--labels", "30"]
    assert main(args) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    metrics = json.loads((run_dir / "results.json").read_text())["results"]["voc-map"]
    details = json.loads((run_dir / "eval-voc-map.json").read_text())
    assert details["ap"]["sheep"] is None and "sheep" in details["undefined_ap"]
    defined = [v for v in details["ap"].values() if v is not None]
    assert len(defined) == 19 and metrics["mAP"] == pytest.approx(sum(defined) / 19)
    defined11 = [v for v in details["ap_11pt"].values() if v is not None]
    assert metrics["mAP_11pt"] == pytest.approx(sum(defined11) / 19)
    assert 0 <= metrics["mAP"] <= 1 and 0 <= metrics["train_mAP"] <= 1
    assert main(["suggest", str(run_dir), "--out", str(tmp_path / "to-label.csv")]) == 2
    assert "voc2007 is multi-label" in capsys.readouterr().err

    capsys.readouterr()
    assert main([*args[:-1], "2"]) == 2  # two labeled images cannot hold a positive of all 20 classes
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the run's progress lines
    assert err.startswith("sslkit: error: class ") and "has no positive image among the 2 labeled ones" in err


# -------------------------------------------------------------------------------------- image folder


def make_folder(
    root: Path, classes=("beagle", "corgi", "pug"), per_class: int = 5, gray: bool = False
) -> None:
    rng = np.random.default_rng(1)
    for c, name in enumerate(classes):
        for i in range(per_class):
            path = root / name / f"{name}_{i}.{'png' if i % 2 else 'jpg'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(rng.normal(60 * c + 40, 20, size=(30 + i, 36, 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(pixels)
            (img.convert("L") if gray else img).save(path)


def test_imagefolder_splits_per_class_resizes_and_caches(tmp_path: Path, registry) -> None:
    make_folder(tmp_path / "dogs" / "Images")
    (tmp_path / "dogs" / "Images" / "pug" / "notes.txt").write_text("not an image")
    opts = {"path": "dogs/Images", "image_size": 16, "test_fraction": 0.2}
    bundle = registry.build("dataset", "imagefolder", tmp_path, False, options=opts)
    assert bundle.info.classes == ["beagle", "corgi", "pug"] and bundle.info.in_chans == 3
    assert tuple(bundle.train.images.shape) == (12, 3, 16, 16) and len(bundle.test) == 3
    assert bundle.test.labels.tolist() == [0, 1, 2] and torch.bincount(bundle.train.labels).tolist() == [
        4,
        4,
        4,
    ]
    # the class colours survive decoding and resizing
    means = [bundle.train.images[bundle.train.labels == c].float().mean() for c in range(3)]
    assert means[0] < means[1] < means[2]
    assert (tmp_path / "dogs" / "Images" / ".sslkit-cache" / "train-16-RGB.pt").exists()

    make_folder(tmp_path / "gray" / "train", gray=True)
    make_folder(tmp_path / "gray" / "test", per_class=2, gray=True)
    gray = registry.build("dataset", "imagefolder", tmp_path, False, options={"path": str(tmp_path / "gray")})
    assert gray.info.in_chans == 1 and (len(gray.train), len(gray.test)) == (15, 6)


def test_imagefolder_pool_named_inside_the_folder_is_not_a_class(tmp_path: Path, registry) -> None:
    make_folder(tmp_path / "pets")
    make_folder(tmp_path / "pets" / "new", classes=("unsorted",))
    opts = {"path": "pets", "unlabeled": "new", "image_size": 16}
    bundle = registry.build("dataset", "imagefolder", tmp_path, False, options=opts)
    assert bundle.info.classes == ["beagle", "corgi", "pug"] and bundle.labels_given
    assert bundle.unlabeled is not None and len(bundle.unlabeled) == 5 and len(bundle.train) == 15


def test_imagefolder_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    make_folder(tmp_path / "pets")
    broken = tmp_path / "pets" / "corgi" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    base = ["run", "--data", "imagefolder", "--data-root", str(tmp_path), "--epochs", "1"]
    base += ["--out", str(tmp_path / "runs")]
    for data_path, needle in ((tmp_path / "pets", str(broken)), (tmp_path / "empty", "no image files under")):
        capsys.readouterr()
        assert main([*base, "--data-opt", f"path={json.dumps(str(data_path))}"]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------- eval of a saved run


def test_sslkit_eval_reruns_knn_on_the_saved_encoder(tmp_path: Path, capsys) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from sslkit.data import split_budget
    from sslkit.features import extract_features
    from sslkit.registry import load_registry

    out = tmp_path / "runs"
    args = [
        "run",
        "--pretext",
        "rotation",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--eval",
        "knn",
        "--device",
        "cpu",
    ]
    args += ["--out", str(out)]
    assert main(args) == 0
    run_dir = next(out.iterdir())
    before = json.loads((run_dir / "results.json").read_text())
    assert before["results"]["knn"]["accuracy"] == before["results"]["knn"]["accuracy_k20"]

    opts = ["--eval-opt", "knn.k=5,10", "--eval-opt", "knn.weighting=uniform", "--device", "cpu"]
    assert main(["eval", str(run_dir), "--eval", "knn", *opts]) == 0
    after = json.loads((run_dir / "results.json").read_text())
    assert after["train_seconds"] == before["train_seconds"]  # merged, not replaced
    knn = after["results"]["knn"]

    # the same numbers from scratch: the digits split, the run's label budget, the saved weights, scikit-learn
    from safetensors.torch import load_file

    registry = load_registry()
    bundle = registry.build("dataset", "digits", tmp_path, False)
    budget = split_budget(bundle.train.labels, 100, 0)
    encoder = registry.build("encoder", "convnet", 1, 8)
    encoder.load_state_dict(load_file(str(run_dir / "encoder.safetensors")))
    cpu = torch.device("cpu")
    bank = extract_features(encoder, bundle.train.images[budget.labeled], bundle.info, cpu).double().numpy()
    test = extract_features(encoder, bundle.test.images, bundle.info, cpu).double().numpy()
    for k in (5, 10):
        ref = KNeighborsClassifier(k, algorithm="brute", metric="cosine").fit(
            bank, bundle.train.labels[budget.labeled]
        )
        assert knn[f"accuracy_k{k}"] == pytest.approx(
            (ref.predict(test) == bundle.test.labels.numpy()).mean(), abs=1e-4
        )

    capsys.readouterr()
    assert main(["eval", str(run_dir), "--eval", "knn", "--eval-opt", "knn.k=500", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("sslkit: error: knn k=500 is larger than the bank of 100 labeled images")
    assert main(["eval", str(tmp_path), "--eval", "knn"]) == 2
    assert "not an sslkit run directory" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- fine-tuning


def test_finetune_starts_from_the_probe_and_trains_end_to_end(registry) -> None:
    from sslkit import Classifier, linear_head
    from sslkit.features import FeatureCache
    from sslkit.probe import fit_logistic

    bundle = registry.build("dataset", "digits", Path("."), False)
    torch.manual_seed(0)
    encoder = registry.build("encoder", "convnet", 1, 8)
    cpu = torch.device("cpu")
    labeled = bundle.train.subset(torch.arange(100))
    feats = FeatureCache(encoder, {"labeled": labeled, "test": bundle.test}, bundle.info, cpu)
    # the folded head reproduces the probe on standardized features exactly
    x, y = feats("labeled"), labeled.labels
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    w, b = fit_logistic((x - mean) / std, y, 10, 0.1, 100)
    model = Classifier(encoder, linear_head(w, b, mean, std), bundle.info)
    probe_logits = ((feats("test") - mean) / std).double() @ w + b
    assert torch.allclose(model.logits(bundle.test.images).double(), probe_logits, atol=1e-3)
    assert torch.equal(model.logits(bundle.test.images).argmax(1), probe_logits.argmax(1))

    ctx = EvalContext(encoder, None, bundle.info, labeled, bundle.test, feats, cpu, None, 0)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = registry.build("evaluator", "finetune", options={"steps": 15, "batch_size": 50}).evaluate(ctx)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # a copy was tuned
    assert 0.3 < result.metrics["accuracy"] <= 1 and "confusion_matrix" in result.details
    first, last = result.details["loss_first_last"]
    assert last < first


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 0}, "steps must be positive"),
        ({"wise": 0.0}, r"wise must be in \(0, 1\]"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
        ({"mixup": -1.0}, "mixup .* must be >= 0"),
        ({"translate": -2}, "translate .* must be >= 0"),
        ({"flips": "sometimes"}, "flips must be true or false"),
    ],
)
def test_invalid_finetune_options_are_usage_errors(registry, options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        registry.build("evaluator", "finetune", options=options)


@pytest.mark.parametrize("name", ["knn", "finetune", "voc-map"])
def test_empty_labeled_split_is_a_usage_error(name: str, registry) -> None:
    ctx = _ctx(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.randn(5, 4), torch.arange(5) % 5)
    if name == "voc-map":
        ctx.info.multilabel = True
        ctx.labeled = Split(ctx.labeled.images, torch.zeros(0, 5))
    with pytest.raises(UsageError) as err:
        registry.build("evaluator", name).evaluate(ctx)
    assert "\n" not in str(err.value)


def test_timm_pretrained_offline_names_the_fix() -> None:
    from sslkit_builtins.encoders import timm_backbone

    if timm_backbone._hub_reachable():
        pytest.skip("the Hugging Face Hub is reachable from here")
    start = time.perf_counter()
    with pytest.raises(
        UsageError, match=r"pretrained weights .*resnet18.*drop --encoder-opt pretrained=true"
    ):
        timm_backbone.create(3, 32, "resnet18", pretrained=True)
    assert time.perf_counter() - start < 10


def test_linear_probe_cross_validation_standardizes_inside_each_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    from sslkit import probe as linear

    seen: list[int] = []
    real = linear.standardization

    def spy(x: torch.Tensor):
        seen.append(len(x))
        return real(x)

    monkeypatch.setattr(linear, "standardization", spy)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=gen) * 10 + 3, torch.arange(40) % 4
    linear.choose_c(x, y, 4, [0.1, 1.0], 5, 0, 100)
    assert seen == [32] * 5  # each fold's statistics come from its 32 training rows, never from all 40
