"""FixMatch and its batched RandAugment: losses against hand computations, the ops against torchvision,
training steps on real MNIST, the moving average, --init from another run, and the default encoder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sslkit_builtins.pretexts.fixmatch import (
    FAR_DIFFUSION,
    NEAR_DIFFUSION,
    FixMatch,
    align_distribution,
    class_shares,
    consistency_loss,
    equal_class_weights,
    fairness_loss,
    freematch_thresholds,
    propagate_labels,
    pseudo_labels,
    with_prior,
)
from torchvision.transforms.v2 import functional as TF

from sslkit import DataInfo, Split, pixel_embedding
from sslkit.cli import main
from sslkit.data import augment as A
from sslkit.engine.loop import Schedule, Trainer

# ------------------------------------------------------------------------------------------ losses


def test_pseudo_labels_and_masked_consistency_loss_by_hand() -> None:
    weak = torch.tensor([[0.96, 0.03, 0.01], [0.5, 0.4, 0.1], [0.02, 0.03, 0.95]])
    labels, mask = pseudo_labels(weak, 0.95)
    assert labels.tolist() == [0, 0, 2] and mask.tolist() == [1.0, 0.0, 1.0]
    strong = torch.tensor([[2.0, 0.0, 0.0], [0.0, 5.0, 0.0], [1.0, 1.0, 1.0]])

    def ce(logits: list[float], target: int) -> float:
        return -logits[target] + math.log(sum(math.exp(v) for v in logits))

    expected = (
        ce([2, 0, 0], 0) + 0 + ce([1, 1, 1], 2)
    ) / 3  # masked images count as zero, mean over all three
    assert float(consistency_loss(strong, labels, mask)) == pytest.approx(expected, rel=1e-6)
    assert float(consistency_loss(strong, labels, torch.zeros(3))) == 0.0


def test_freematch_thresholds_and_fairness_term_by_hand() -> None:
    # the running mean confidence 0.8, scaled per class by its running probability over the largest (0.5)
    thresholds = freematch_thresholds(torch.tensor(0.8), torch.tensor([0.5, 0.3, 0.2]))
    assert torch.allclose(thresholds, torch.tensor([0.8, 0.48, 0.32]))

    strong = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]], requires_grad=True)
    mask = torch.tensor([1.0, 1.0, 0.0])  # the third image is not kept: class 2 is absent from the batch
    class_confidence, histogram = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.5, 0.25, 0.25])
    loss = fairness_loss(strong, mask, class_confidence, histogram)
    p = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).softmax(1).mean(0)
    batch = torch.tensor([p[0] / 0.5, p[1] / 0.5, 0.0])
    target = torch.tensor([1.0, 1.2, 0.8])
    expected = (target[:2] / target.sum() * torch.log(batch[:2] / batch.sum())).sum()  # the empty class: 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(strong.grad).all()  # the empty class gives no NaN gradient
    # the same gradient as USB's form, whose empty class adds the constant target * log(1e-12)
    usb_strong = strong.detach().clone().requires_grad_()
    kept = usb_strong[:2].softmax(1).mean(0)
    usb_batch = torch.stack([kept[0] / 0.5, kept[1] / 0.5, torch.zeros(())])
    (target / target.sum() * torch.log(usb_batch / usb_batch.sum() + 1e-12)).sum().backward()
    assert torch.allclose(strong.grad, usb_strong.grad, atol=1e-6)
    assert float(fairness_loss(strong, torch.zeros(3), class_confidence, histogram)) == 0.0


def test_distribution_alignment_by_hand() -> None:
    probs = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    prior, running = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    out = align_distribution(probs, prior, running)
    first = torch.tensor([0.6 * 2, 0.4 * (2 / 3)])
    assert torch.allclose(out[0], first / first.sum())
    assert torch.allclose(out.sum(1), torch.ones(2))


def test_product_with_the_graph_prior_by_hand() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [1.0, 0.0]])
    prior = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.0, 1.0]])
    out = with_prior(probs, prior)
    assert torch.allclose(out[0], torch.tensor([0.5, 0.5]))  # 0.09 against 0.09
    assert torch.allclose(out[1], torch.tensor([0.2, 0.8]))
    assert torch.equal(out[2], torch.tensor([0.5, 0.5]))  # the experts exclude each other: uniform


def test_label_propagation_follows_the_chain_not_the_nearest_label() -> None:
    # two chains of points on the unit circle, 0.05 rad apart; labeled: the first point of each. The end of the
    # first chain (0.9 rad) is nearer the second chain's label (1.2 rad) than its own (0 rad), but it is linked to
    # its own label through its chain, and the graph (2 neighbours) has no edge across the 0.3 rad gap.
    angles = torch.cat([torch.arange(19) * 0.05, 1.2 + torch.arange(21) * 0.05])
    points = torch.stack([angles.cos(), angles.sin()], 1)
    labels = torch.full((40,), -1)
    labels[0], labels[19] = 0, 1
    out = propagate_labels(points, labels, 2, neighbours=2)
    assert out.argmax(1).tolist() == [0] * 19 + [1] * 21
    assert torch.allclose(out.sum(1), torch.ones(40))
    nearest_label = (points @ points[[0, 19]].T).argmax(1)
    assert nearest_label[18] == 1  # what a nearest-labeled-image rule would say


@pytest.mark.parametrize("balance", [False, True])
def test_label_propagation_matches_the_closed_form_with_class_mass_normalization(balance: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    points = torch.nn.functional.normalize(torch.randn(40, 5, generator=gen), dim=1)
    labels = torch.full((40,), -1)
    labels[[0, 1, 2]] = torch.tensor([0, 0, 1])  # class 0 twice, class 1 once, class 2 never
    shares = class_shares(labels[:3], 3, balance)
    out = propagate_labels(points, labels, 3, neighbours=4, alpha=0.9, power=2.0, shares=shares)
    # by hand, densely: the 4 nearest others by cosine, weights cos^3 (negative ones 0), W + W^T, D^-1/2 W D^-1/2
    x = points.double().numpy()
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    w = np.zeros((40, 40))
    for i in range(40):
        for j in np.argsort(-sim[i])[:4]:
            w[i, j] = max(sim[i, j], 0) ** 3
    w = w + w.T
    d = w.sum(1) ** -0.5
    y = np.zeros((40, 3))
    y[[0, 1, 2], [0, 0, 1]] = 1
    scores = np.clip(np.linalg.solve(np.eye(40) - 0.9 * d[:, None] * w * d[None, :], y), 0, None)
    share = np.array([2.0 + 10, 1.0 + 10, 0.0 + 10]) / 33  # labeled counts + the pseudo-count
    if balance:
        share = np.full(3, 1 / 3)  # equal classes, whatever the counts
    assert np.allclose(shares.numpy(), share)
    scores = (scores * share / scores.sum(0).clip(1e-30)) ** 2
    expected = np.where(
        scores.sum(1, keepdims=True) > 0, scores / scores.sum(1, keepdims=True).clip(1e-30), 1 / 3
    )
    assert np.allclose(out.numpy(), expected, atol=1e-4)


def test_balance_weighs_each_labeled_class_equally_and_leaves_balanced_labels_alone() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    assert torch.allclose(equal_class_weights(labels, 3), torch.tensor([4 / 6, 4 / 2, 0.0]))
    # the weighted cross-entropy is then the mean over present classes of each class's mean loss
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    by_hand = (each[:3].mean() + each[3]) / 2
    weighted = torch.nn.functional.cross_entropy(logits, labels, weight=equal_class_weights(labels, 3))
    assert torch.allclose(weighted, by_hand)

    gen = torch.Generator().manual_seed(1)
    classes = torch.arange(60) % 2
    images = (torch.rand(60, 1, 8, 8, generator=gen) * 60 + 150 * classes.view(-1, 1, 1, 1)).to(torch.uint8)
    info = DataInfo("toy", ["dark", "bright"], 1, 8, (0.5,), (0.25,))

    class Pixels(torch.nn.Flatten):
        feature_dim = 64

    def prepared(labeled: Split, balance: bool) -> FixMatch:
        fixmatch = FixMatch(Pixels(), info, balance=balance)
        fixmatch.prepare(images[10:], labeled)
        return fixmatch

    balanced, uneven = Split(images[:4], classes[:4]), Split(images[[0, 2, 4, 1]], classes[[0, 2, 4, 1]])
    on, off = prepared(balanced, True), prepared(balanced, False)
    assert torch.equal(on.class_weight, torch.ones(2)) and off.class_weight is None
    assert torch.equal(on.graph_prior, off.graph_prior) and torch.equal(on.pool_shares, off.pool_shares)
    on, off = prepared(uneven, True), prepared(uneven, False)
    assert torch.allclose(on.class_weight, torch.tensor([4 / 6, 2.0]))
    assert on.graph_prior[:, 1].sum() > off.graph_prior[:, 1].sum()  # the rarer label's class not shrunk


def test_label_propagation_reaches_further_when_labels_are_few() -> None:
    gen = torch.Generator().manual_seed(4)
    points = torch.nn.functional.normalize(torch.randn(60, 6, generator=gen), dim=1)
    few, many = torch.full((60,), -1), torch.full((60,), -1)
    few[:2] = torch.tensor([0, 1])  # one per class
    many[:10] = torch.arange(10) % 2  # five per class
    for labels, (alpha, power) in ((few, FAR_DIFFUSION), (many, NEAR_DIFFUSION)):
        chosen = propagate_labels(points, labels, 2, neighbours=5)
        assert torch.equal(
            chosen, propagate_labels(points, labels, 2, neighbours=5, alpha=alpha, power=power)
        )
    assert not torch.equal(
        propagate_labels(points, few, 2, neighbours=5),
        propagate_labels(points, few, 2, neighbours=5, alpha=NEAR_DIFFUSION[0], power=NEAR_DIFFUSION[1]),
    )


def test_pixel_embedding_is_deterministic_unit_and_chunked() -> None:
    images = (torch.rand(50, 1, 40, 40, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    one = pixel_embedding(images, dims=8)
    assert one.shape == (50, 8) and torch.allclose(one.norm(dim=1), torch.ones(50), atol=1e-5)
    assert torch.equal(one, pixel_embedding(images, dims=8))
    chunked = pixel_embedding(images, dims=8, chunk=7)
    assert torch.allclose(chunked.abs(), one.abs(), atol=1e-4)  # each component up to its sign


def test_the_encoders_features_join_the_graph_where_pixels_do_not_know_the_classes() -> None:
    # the class is an image's brightness; the graph's pixel rows are centred per image, so pixels alone do not see it
    class Brightness(torch.nn.Module):
        feature_dim = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((1, 2, 3)).unsqueeze(1)

    gen = torch.Generator().manual_seed(0)
    classes = torch.arange(60) % 2
    images = (torch.rand(60, 1, 8, 8, generator=gen) * 100 + 120 * classes.view(-1, 1, 1, 1)).to(torch.uint8)
    info = DataInfo("toy", ["dark", "bright"], 1, 8, (0.5,), (0.25,))
    labeled, pool = Split(images[:2], classes[:2]), images[2:]
    accuracy = {}
    for graph in ("pixels", "pixels+encoder"):
        fixmatch = FixMatch(Brightness(), info, graph=graph)
        fixmatch.prepare(pool, labeled)
        assert fixmatch.graph_prior is not None
        accuracy[graph] = (fixmatch.graph_prior.argmax(1) == classes[2:]).float().mean().item()
    assert accuracy["pixels+encoder"] == 1.0 and accuracy["pixels"] < 0.8, accuracy


# ------------------------------------------------------------------------------------- RandAugment


def _uint8_batch() -> torch.Tensor:
    u = (torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 255).round().to(torch.uint8)
    u[0] = 7  # a constant image: equalize and autocontrast leave it alone
    u[1, :, :8] = 200
    return u


@pytest.mark.parametrize(
    ("name", "ours", "reference", "tolerance"),
    [
        ("equalize", lambda x: A.equalize(x), TF.equalize, 0),
        ("autocontrast", lambda x: A.autocontrast(x), TF.autocontrast, 1),
        ("posterize", lambda x: A.posterize(x, torch.full((12,), 3)), lambda u: TF.posterize(u, 3), 0),
        ("solarize", lambda x: A.solarize(x, torch.full((12,), 0.5)), lambda u: TF.solarize(u, 127.5), 0),
        # torchvision rounds its blurred / grey image to uint8 before blending: one level apart at most
        (
            "sharpness",
            lambda x: A._colour_op("sharpness", x, torch.full((12,), 0.8)),
            lambda u: TF.adjust_sharpness(u, 1.72),
            1.5,
        ),
        (
            "contrast",
            lambda x: A._colour_op("contrast", x, torch.full((12,), -0.6)),
            lambda u: TF.adjust_contrast(u, 0.46),
            1.5,
        ),
        (
            "brightness",
            lambda x: A._colour_op("brightness", x, torch.full((12,), 0.5)),
            lambda u: TF.adjust_brightness(u, 1.45),
            1,
        ),
    ],
)
def test_randaugment_ops_match_torchvision(name: str, ours, reference, tolerance: float) -> None:
    u = _uint8_batch()
    got = ours(u.float() / 255) * 255
    assert (got - reference(u).float()).abs().max() <= tolerance + 1e-3, name


def test_rand_augment_is_seeded_per_sample_and_keeps_range() -> None:
    x = (
        torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        .expand(64, 1, 28, 28)
        .contiguous()
    )
    a = A.rand_augment(x, generator=torch.Generator().manual_seed(5))
    b = A.rand_augment(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert len({tuple(img.flatten().tolist()) for img in a}) > 32
    # no ops and no cutout is the identity
    assert torch.equal(A.rand_augment(x, n_ops=0, cutout_size=0), x)
    with pytest.raises(ValueError, match="unknown RandAugment op"):
        A.rand_augment(x, ops=["identity", "blurr"])


def test_augmentations_ignore_the_training_steps_autocast() -> None:
    """Pretexts augment inside the step's bfloat16 autocast (CUDA; CPUs with native bfloat16): the transforms
    still compute in the batch's float32, exactly as outside it (RGB: luma and colour matrices are products)."""
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    transforms = {
        "rand_augment": lambda g: A.rand_augment(x, n_ops=3, generator=g),
        "simclr_view": lambda g: A.simclr_view(x, blur=True, generator=g),
    }
    for name, transform in transforms.items():
        plain = transform(torch.Generator().manual_seed(7))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = transform(torch.Generator().manual_seed(7))
        assert inside.dtype == torch.float32 and torch.equal(inside, plain), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rand_augment_draws_the_same_parameters_on_cuda() -> None:
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    cpu = A.rand_augment(x, generator=torch.Generator().manual_seed(3))
    gpu = A.rand_augment(x.cuda(), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(cpu, gpu.cpu(), atol=2e-3)


# ------------------------------------------------------------------------------------------ training


def test_a_few_dozen_steps_on_mnist_lower_the_loss_and_raise_the_mask_rate(registry, mnist) -> None:
    from sslkit.data import split_budget

    torch.manual_seed(0)
    budget = split_budget(mnist.train.labels, 100, 0)
    labeled = mnist.train.subset(budget.labeled)
    pool = mnist.train.images[budget.unlabeled[:6000]]
    encoder = registry.build("encoder", "convnet", 1, 28, options={"width": 16, "pool": "avg"})
    pretext = registry.build("pretext", "fixmatch", encoder, mnist.info, options={"threshold": 0.7})
    schedule = Schedule(epochs=1, batch_size=64, lr=0.03, weight_decay=5e-4, optimizer="sgd", warmup_epochs=0)
    trainer = Trainer(
        pretext, pool[: 64 * 80], labeled, schedule, torch.device("cpu"), 0, show_progress=False
    )
    steps = []
    order = trainer.epoch_order(0)
    for i in range(80):
        steps.append(pretext.train_step(trainer.make_batch(order[i]), trainer.optimizers, trainer.model))
    first, last = steps[:10], steps[-10:]

    def mean(rows: list[dict], key: str) -> float:
        return sum(float(r[key]) for r in rows) / len(rows)

    assert mean(last, "supervised") < 0.6 * mean(first, "supervised")
    assert mean(last, "mask") > mean(first, "mask") + 0.1
    assert len(trainer.make_batch(order[0]).labeled_images) == 16  # batch_size / mu
    # the evaluated encoder is the moving average: close to the student, not equal to it
    avg = torch.cat([p.flatten() for p in pretext.encoder.parameters()])
    live = torch.cat([p.flatten() for p in pretext.student["encoder"].parameters()])
    assert not torch.equal(avg, live) and all(not p.requires_grad for p in pretext.encoder.parameters())
    assert torch.equal(
        pretext.encoder.trunk[1].running_mean, pretext.student["encoder"].trunk[1].running_mean
    )


def test_freematch_thresholds_follow_the_pool_and_resume_with_the_run(registry, mnist) -> None:
    torch.manual_seed(0)
    labeled = mnist.train.subset(torch.arange(40))
    encoder = registry.build("encoder", "convnet", 1, 28, options={"width": 8, "pool": "avg"})
    pretext = registry.build("pretext", "fixmatch", encoder, mnist.info, options={"threshold": "freematch"})
    schedule = Schedule(epochs=1, batch_size=32, lr=0.03, weight_decay=5e-4, optimizer="sgd", warmup_epochs=0)
    pool = mnist.train.images[1000:1320]
    trainer = Trainer(pretext, pool, labeled, schedule, torch.device("cpu"), 0, show_progress=False)
    order = trainer.epoch_order(0)
    terms = [
        pretext.train_step(trainer.make_batch(order[i]), trainer.optimizers, trainer.model) for i in range(3)
    ]
    assert all(torch.isfinite(t["loss"]) and "fairness" in t for t in terms)
    assert float(pretext.confidence) > 0.1  # moved up from 1/10 by the confident weak views
    assert float(pretext.label_histogram.sum()) == pytest.approx(1.0, abs=1e-5)
    # the running means are buffers: a checkpoint carries them, so a resumed run thresholds as the killed one
    state = pretext.state_dict()
    assert {"confidence", "class_confidence", "label_histogram"} <= set(state)
    again = registry.build(
        "pretext",
        "fixmatch",
        registry.build("encoder", "convnet", 1, 28, options={"width": 8, "pool": "avg"}),
        mnist.info,
        options={"threshold": "freematch"},
    )
    again.load_state_dict(state)
    assert torch.equal(again.class_confidence, pretext.class_confidence)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 0.0}, "threshold must be in (0, 1]"),
        ({"threshold": 1.5}, 'threshold must be in (0, 1] or "freematch"'),
        ({"threshold": '"free"'}, "threshold must be one of a number or 'freematch', got 'free'"),
        ({"mu": 0}, "mu must be at least 1"),
        ({"ema": 1.0}, "ema must be in [0, 1)"),
        ({"cutout": 2.0}, "cutout in [0, 1]"),
        ({"graph": "edges"}, "graph must be one of pixels, pixels+encoder, none, got 'edges'"),
    ],
)
def test_bad_options_are_one_line_errors(options: dict, message: str, tmp_path: Path, capsys) -> None:
    argv = ["run", "--pretext", "fixmatch", "--data", "digits", "--out", str(tmp_path / "runs")]
    for key, value in options.items():
        argv += ["--pretext-opt", f"{key}={value}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------ --init


def _only_run(parent: Path) -> Path:
    (run_dir,) = parent.iterdir()
    return run_dir


def test_init_starts_from_another_runs_encoder_and_records_it(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no t-SNE in the reports: not what this test is about
    base = [
        "--tsne-points",
        "0",
        "--data",
        "digits",
        "--eval",
        "linear",
        "--eval-opt",
        "linear.c_grid=[1.0]",
        "--no-baselines",
    ]
    rotation = ["run", "--pretext", "rotation", "--epochs", "1", "--pool-size", "256", *base]
    assert main([*rotation, "--out", str(tmp_path / "a")]) == 0
    source = _only_run(tmp_path / "a")
    argv = ["run", "--pretext", "fixmatch", "--init", str(source), "--epochs", "0", *base]
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    target = _only_run(tmp_path / "b")
    # no training: the moving average starts as the loaded encoder, so the saved weights are the source's
    assert (target / "encoder.safetensors").read_bytes() == (source / "encoder.safetensors").read_bytes()
    record = json.loads((target / "config.json").read_text())
    assert record["config"]["encoder"] == "convnet" and record["init"]["pretext"] == "rotation"
    assert record["init"]["run_dir"] == str(source.resolve())
    capsys.readouterr()

    # an encoder that does not fit: one line, exit 2, nothing written
    bad = [*argv, "--encoder-opt", "width=16", "--out", str(tmp_path / "c")]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not fit this run's encoder" in err, err
    assert main([*argv, "--encoder", "dcgan-disc", "--out", str(tmp_path / "c")]) == 2
    assert "holds a 'convnet' encoder, not 'dcgan-disc'" in capsys.readouterr().err
    assert main([*argv[:4], str(tmp_path), *argv[5:], "--out", str(tmp_path / "c")]) == 2
    assert "not an sslkit run directory" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_the_recipes_pretraining_stage_runs_first_is_recorded_and_resumes(
    data_root: Path, tmp_path: Path, capsys
) -> None:
    # fixmatch's Fashion-MNIST recipe starts from one epoch of rotation, run inside the run's own directory
    base = ["run", "--data", "fashion-mnist", "--data-root", str(data_root), "--no-download", "--epochs", "0"]
    base += ["--pool-size", "256", "--eval", "linear", "--eval-opt", "linear.c_grid=[1.0]"]
    base += ["--no-baselines", "--tsne-points", "0"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert "pretraining stage: rotation, 1 epoch(s)" in capsys.readouterr().err
    run_dir = _only_run(tmp_path / "a")
    stage = run_dir / "pretrain"
    stage_record = json.loads((stage / "config.json").read_text())
    assert stage_record["config"]["pretext"] == "rotation" and stage_record["schedule"]["epochs"] == 1
    assert stage_record["config"]["encoder_options"] == {"width": 16, "pool": "avg", "stages": 3, "convs": 2}
    # no fixmatch training: its moving average starts as the stage's encoder, so the saved weights are the stage's
    assert (run_dir / "encoder.safetensors").read_bytes() == (stage / "encoder.safetensors").read_bytes()
    # the classifier and the pool's predictions are the run's, not the stage's
    assert [(d / "predictions.csv").exists() for d in (run_dir, stage)] == [True, False]
    assert [(d / "classifier.safetensors").exists() for d in (run_dir, stage)] == [True, False]
    record = json.loads((run_dir / "config.json").read_text())
    assert record["init"]["pretext"] == "rotation" and record["init"]["run_dir"] == str(stage.resolve())

    # resuming a run killed after its stage does not train the stage again
    (run_dir / "results.json").unlink()
    stage_weights = (stage / "encoder.safetensors").stat().st_mtime_ns
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert "pretraining stage" not in capsys.readouterr().err
    assert (stage / "encoder.safetensors").stat().st_mtime_ns == stage_weights
    assert (run_dir / "results.json").exists()

    # --no-pretrain (or an --init) starts from a random encoder, and says so in config.json
    assert main([*base, "--no-pretrain", "--out", str(tmp_path / "b")]) == 0
    run_dir = _only_run(tmp_path / "b")
    assert not (run_dir / "pretrain").exists()
    assert json.loads((run_dir / "config.json").read_text())["init"] is None


def test_a_selected_run_chooses_once_for_its_stage_and_its_resume(
    data_root: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """--select with a pretraining stage: the stage trains on the run's picks, and a resumed run takes its recorded
    picks; neither chooses again (on 60,000 images a choice takes half a minute)."""
    from sslkit import build, labeling

    chosen = []
    real = build.selected_budget
    monkeypatch.setattr(build, "selected_budget", lambda *a: chosen.append(1) or real(*a))
    monkeypatch.setattr(labeling, "selection_space", None)  # random picks read no embedding: never computed
    argv = ["run", "--data", "fashion-mnist", "--data-root", str(data_root), "--no-download", "--epochs", "0"]
    argv += ["--labels", "20", "--select", "random", "--pool-size", "256", "--eval", "linear"]
    argv += [
        "--eval-opt",
        "linear.c_grid=[1.0]",
        "--no-baselines",
        "--tsne-points",
        "0",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    run_dir = _only_run(tmp_path / "r")
    data = json.loads((run_dir / "config.json").read_text())["data"]
    stage_data = json.loads((run_dir / "pretrain" / "config.json").read_text())["data"]
    assert len(chosen) == 1 and len(data["selected"]) == 20
    assert {k: stage_data[k] for k in build.SELECTION_RECORD} == {k: data[k] for k in build.SELECTION_RECORD}
    assert stage_data["labels_sha256"] == data["labels_sha256"]
    (run_dir / "results.json").unlink()
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert len(chosen) == 1 and (run_dir / "results.json").exists()
    assert capsys.readouterr().err.count("selecting 20 images") == 1
