"""The built-in pretexts (simclr, autoencoder, dcgan, sgan, supervised), the dcgan-disc encoder and the head
evaluator: losses against hand computations and reference implementations, real training steps on Fashion-MNIST,
option checks, pictures, and one end-to-end `sslkit run` per pretext on the bundled digits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from sslkit_builtins.pretexts.gan import (
    Generator,
    d_loss_nonsaturating,
    feature_matching_loss,
    g_loss_nonsaturating,
    sgan_unsupervised_loss,
)
from sslkit_builtins.pretexts.simclr import nt_xent
from torch import nn
from torch.nn import functional as F

from sslkit import EvalContext, UsageError
from sslkit.cli import main
from sslkit.engine.loop import Schedule, Trainer
from sslkit.features import FeatureCache

# ------------------------------------------------------------------------------------------ losses


def test_nt_xent_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    n, t = 3, 0.5
    z1, z2 = torch.randn(n, 4, dtype=torch.float64), torch.randn(n, 4, dtype=torch.float64)
    views = [v / v.norm() for v in torch.cat([z1, z2])]
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = {j: float(views[i] @ views[j]) / t for j in range(2 * n) if j != i}
        total += -sims[positive] + math.log(sum(math.exp(s) for s in sims.values()))
    assert float(nt_xent(z1, z2, t)) == pytest.approx(total / (2 * n), rel=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_lightly(temperature: float) -> None:
    from lightly.loss import NTXentLoss

    torch.manual_seed(1)
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    expected = NTXentLoss(temperature=temperature)(z1, z2)
    assert float(nt_xent(z1, z2, temperature)) == pytest.approx(float(expected), rel=1e-5)


def test_sgan_loss_is_the_k_plus_1_class_loss_with_a_zero_fake_logit() -> None:
    torch.manual_seed(2)
    real, fake = torch.randn(5, 10, dtype=torch.float64) * 3, torch.randn(7, 10, dtype=torch.float64) * 3
    zero = torch.zeros(1, dtype=torch.float64)
    p_fake_of_real = torch.stack([torch.cat([r, zero]).softmax(0)[-1] for r in real])
    p_fake_of_fake = torch.stack([torch.cat([f, zero]).softmax(0)[-1] for f in fake])
    expected = 0.5 * (-(1 - p_fake_of_real).log().mean() - p_fake_of_fake.log().mean())
    assert float(sgan_unsupervised_loss(real, fake)) == pytest.approx(float(expected), rel=1e-6)


def test_gan_losses_match_binary_cross_entropy() -> None:
    torch.manual_seed(3)
    real, fake = torch.randn(6), torch.randn(6)
    bce = F.binary_cross_entropy_with_logits
    expected_d = bce(real, torch.ones(6)) + bce(fake, torch.zeros(6))
    assert float(d_loss_nonsaturating(real, fake)) == pytest.approx(float(expected_d), rel=1e-6)
    assert float(g_loss_nonsaturating(fake)) == pytest.approx(float(bce(fake, torch.ones(6))), rel=1e-6)
    a, b = torch.randn(4, 3), torch.randn(5, 3)
    assert float(feature_matching_loss(a, b)) == pytest.approx(float(((a.mean(0) - b.mean(0)) ** 2).mean()))
    means = torch.tensor([[1.0, -2.0], [3.0, 2.0]]), torch.tensor([[0.0, 1.0]])  # mean gaps 2 and -1
    assert float(feature_matching_loss(*means, "l1")) == pytest.approx(1.5)
    assert float(feature_matching_loss(*means, "l2")) == pytest.approx(2.5)


# ------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize(("size", "chans"), [(8, 1), (28, 1), (32, 3), (20, 3)])
def test_generated_and_reconstructed_images_have_the_data_shape(registry, size: int, chans: int) -> None:
    from sslkit import DataInfo

    info = DataInfo("x", ["a", "b"], chans, size, (0.5,) * chans, (0.25,) * chans)
    assert Generator(16, chans, size, 8)(torch.randn(3, 16)).shape == (3, chans, size, size)
    x = torch.rand(2, chans, size, size)
    for encoder_name in ("convnet", "dcgan-disc"):
        encoder = registry.build("encoder", encoder_name, chans, size, options={"width": 8})
        assert encoder(x).shape == (2, encoder.feature_dim)
        ae = registry.build("pretext", "autoencoder", encoder, info)
        assert ae.reconstruct(x).shape == x.shape
        assert ae.from_map

    class VectorOnly(nn.Module):  # an encoder without a feature map: the decoder starts from the vector
        feature_dim = 12

        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(chans * size * size, 12))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    ae = registry.build("pretext", "autoencoder", VectorOnly(), info)
    assert not ae.from_map and ae.reconstruct(x).shape == x.shape


def test_dcgan_disc_is_the_reference_discriminator(registry) -> None:
    encoder = registry.build("encoder", "dcgan-disc", 1, 28)
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128] and all(c.stride == (2, 2) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in encoder.modules()) == 2
    pyramid = (32 + 64 + 128) * 4 * 4  # every block max-pooled to 4x4 (the DCGAN paper's readout)
    assert encoder.feature_dim == pyramid and encoder(torch.rand(2, 1, 28, 28)).shape == (2, pyramid)
    assert registry.build("encoder", "dcgan-disc", 3, 32).feature_dim == pyramid
    last_map = registry.build("encoder", "dcgan-disc", 1, 28, options={"grid": 0})
    assert last_map.feature_dim == 128 * 4 * 4 and last_map(torch.rand(2, 1, 28, 28)).shape == (2, 2048)


# ------------------------------------------------------------------------------------------ training

ENC = {"width": 8}  # the convnet, narrow: a real encoder that trains in seconds on CPU


def _trainer(registry, fashion, name: str, options: dict, batch: int, lr: float, pool_size: int = 2000):
    torch.manual_seed(0)
    encoder = registry.build("encoder", "convnet", 1, 28, options=ENC)
    pretext = registry.build("pretext", name, encoder, fashion.info, options=options)
    labeled = fashion.train.subset(torch.arange(100))
    schedule = Schedule(
        epochs=1, batch_size=batch, lr=lr, weight_decay=0.0, optimizer=pretext.defaults["optimizer"]
    )
    schedule.warmup_epochs = 0.0
    return Trainer(
        pretext, fashion.train.images[100 : 100 + pool_size], labeled, schedule, torch.device("cpu"), 0
    )


def _losses(trainer: Trainer, steps: int) -> list[dict[str, float]]:
    trainer.pretext.train()
    out = []
    for step in range(steps):
        order = trainer.epoch_order(step // trainer.steps_per_epoch)
        batch = trainer.make_batch(order[step % trainer.steps_per_epoch])
        terms = trainer.pretext.train_step(batch, trainer.optimizers, trainer.model)
        out.append({k: float(v) for k, v in terms.items()})
    return out


CASES = {  # name, options, batch, lr, steps; SimCLR's loss starts near log(2 * 64 - 1) and falls slowest
    "simclr": ("simclr", {}, 64, 2e-3, 30),
    "autoencoder": ("autoencoder", {}, 32, 2e-3, 30),
    "autoencoder-denoising": ("autoencoder", {"variant": "denoising"}, 32, 2e-3, 30),
    "autoencoder-masked": ("autoencoder", {"variant": "masked"}, 32, 2e-3, 30),
    "dcgan": ("dcgan", {"gen_width": 8}, 32, 2e-4, 30),
    "sgan": ("sgan", {"gen_width": 8}, 32, 3e-4, 30),
    "supervised": ("supervised", {}, 100, 1e-3, 30),
}


@pytest.mark.parametrize("case", list(CASES))
def test_training_steps_lower_the_loss(registry, fashion, case: str) -> None:
    name, options, batch, lr, steps = CASES[case]
    history = _losses(_trainer(registry, fashion, name, options, batch, lr), steps)
    assert all(math.isfinite(v) for terms in history for v in terms.values()), "a loss term became NaN/inf"
    first = sum(h["loss"] for h in history[:5]) / 5
    last = sum(h["loss"] for h in history[-5:]) / 5
    assert last < (0.95 if name == "simclr" else 0.9) * first, (
        f"{case}: loss went from {first:.4f} to {last:.4f}"
    )


@pytest.mark.parametrize("name", ["sgan", "supervised"])
def test_head_evaluator_scores_the_pretexts_own_classifier(registry, fashion, name: str) -> None:
    trainer = _trainer(registry, fashion, name, {"gen_width": 8} if name == "sgan" else {}, 64, 1e-3)
    _losses(trainer, 25)
    pretext, info = trainer.pretext, fashion.info
    test = fashion.test.subset(torch.arange(1000))
    ctx = EvalContext(
        pretext.encoder,
        pretext,
        info,
        trainer.labeled,
        test,
        FeatureCache(pretext.encoder, {}, info, torch.device("cpu")),
        torch.device("cpu"),
        None,
        0,
    )
    metrics = registry.build("evaluator", "head").evaluate(ctx).metrics
    pretext.eval()
    with torch.no_grad():
        pred = pretext.classifier(pretext.encoder(info.normalize(test.images.float() / 255))).argmax(1)
    assert metrics["accuracy"] == pytest.approx(float((pred == test.labels).float().mean()))
    assert metrics["accuracy"] > 0.3  # chance is 0.1


def test_head_evaluator_refuses_a_pretext_without_a_classifier(registry, fashion) -> None:
    trainer = _trainer(registry, fashion, "simclr", {}, 64, 1e-3)
    ctx = EvalContext(
        trainer.pretext.encoder,
        trainer.pretext,
        fashion.info,
        trainer.labeled,
        fashion.test,
        FeatureCache(trainer.pretext.encoder, {}, fashion.info, torch.device("cpu")),
        torch.device("cpu"),
        None,
        0,
    )
    with pytest.raises(UsageError, match=r"head.*needs a pretext with its own classifier.*SimCLR"):
        registry.build("evaluator", "head").evaluate(ctx)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("simclr", {"temperature": 0.0}, "temperature must be positive"),
        ("simclr", {"crop_min": 1.5}, "crop_min must be in"),
        ("autoencoder", {"variant": "sparse"}, "variant must be one of plain, denoising, masked"),
        ("autoencoder", {"mask_ratio": 1.0}, "mask_ratio must be in"),
        ("autoencoder", {"noise_std": -1.0}, "noise_std must be positive"),
        ("dcgan", {"latent_dim": 0}, "latent_dim and gen_width must be at least 1"),
        ("dcgan", {"input_noise": -0.1}, "dcgan option input_noise must be >= 0"),
        ("sgan", {"dropout": 1.0}, "dropout in"),
        ("sgan", {"feature_matching": "maybe"}, "feature_matching must be one of 'l1', 'l2', 'off'"),
        ("supervised", {"dropout": -0.1}, "dropout must be in"),
        ("supervised", {"lr": 0.1}, "has no option 'lr'"),
    ],
)
def test_invalid_options_are_usage_errors(registry, fashion, name: str, options: dict, message: str) -> None:
    encoder = registry.build("encoder", "convnet", 1, 28, options=ENC)
    with pytest.raises(UsageError, match=message):
        registry.build("pretext", name, encoder, fashion.info, options=options)


def test_autoencoder_writes_reconstructions(registry, fashion, tmp_path: Path) -> None:
    trainer = _trainer(registry, fashion, "autoencoder", {"variant": "masked"}, 32, 2e-3)
    _losses(trainer, 2)
    (name, image), *others = trainer.pretext.pictures().items()
    assert name == "reconstructions" and not others
    assert image.shape == (3, 3 * 29 + 1, 8 * 29 + 1)  # 3 rows (input, masked, output) of 8 images
    assert image.min() >= 0 and image.max() <= 1


# ------------------------------------------------------------------------------------------ end to end

E2E = {
    "simclr": ["--epochs", "2", "--batch-size", "128"],
    "autoencoder": ["--epochs", "1", "--pretext-opt", 'variant="denoising"'],
    "dcgan": ["--epochs", "2", "--encoder", "dcgan-disc"],
    "sgan": ["--epochs", "3", "--lr", "1e-3", "--eval", "linear,head"],
    "supervised": ["--epochs", "40", "--eval", "linear,head"],
}


@pytest.mark.parametrize("name", list(E2E))
def test_sslkit_run_end_to_end_on_digits(name: str, tmp_path: Path) -> None:
    out = tmp_path / "runs"  # tmp_path also holds the isolated cache folder
    args = ["run", "--data", "digits", "--pretext", name, "--out", str(out), "--device", "cpu", *E2E[name]]
    args += ["--tsne-points", "0", "--no-baselines"]  # both have tests of their own
    assert main(args) == 0
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())["results"]
    for metrics in results.values():
        assert metrics["accuracy"] > 0.2, results  # chance is 0.1
    pictures = {p.name for p in run_dir.glob("*.png")}
    expected = {
        "autoencoder": {"picture-reconstructions-epoch1.png"},
        "dcgan": {"picture-samples-epoch1.png", "picture-samples-epoch2.png"},
    }
    expected["sgan"] = expected["dcgan"]
    assert expected.get(name, set()) <= pictures
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(e["loss"]) for e in epochs)
