"""The Improved-GAN recipe's parts: weight normalization with data-dependent initialization, the noise layers,
the MNIST recipe's selection, a few dozen real steps, and the collapse report."""

from __future__ import annotations

import pytest
import torch
from sslkit_builtins.encoders.wn_mlp import GaussianNoise, WeightNormLinear
from sslkit_builtins.pretexts.gan import real_fake_accuracy

from sslkit import build
from sslkit.config import RunConfig
from sslkit.data import split_budget
from sslkit.engine.loop import Schedule, Trainer


def test_weight_norm_initializes_to_unit_variance_on_its_first_batch_only() -> None:
    torch.manual_seed(0)
    layer = WeightNormLinear(20, 7)
    first = torch.randn(256, 20) * 3 + 1
    out = layer(first).detach()
    torch.testing.assert_close(out.mean(0), torch.zeros(7), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(7), atol=1e-4, rtol=0)
    scale = layer.scale.detach().clone()
    layer(torch.randn(256, 20))  # a second batch does not re-initialize
    assert torch.equal(layer.scale, scale) and bool(layer.initialized)
    # the weight is the direction over its norm, times the scale: the norm of v does not matter
    with torch.no_grad():
        layer.direction.mul_(5)
    torch.testing.assert_close(layer(first), out)
    v, g, b = layer.direction, layer.scale, layer.bias  # the definition: y = x (g v / |v|)^T + b
    torch.testing.assert_close(
        out, first @ (g[:, None] * v / v.norm(dim=1, keepdim=True)).T.detach() + b.detach()
    )
    fresh = WeightNormLinear(20, 7)
    fresh.load_state_dict(layer.state_dict())  # a loaded layer keeps its initialization
    torch.testing.assert_close(fresh(first), out)
    idle = WeightNormLinear(20, 7).eval()
    idle(first)
    assert not bool(idle.initialized)  # eval mode never initializes


def test_gaussian_noise_only_in_training() -> None:
    noise = GaussianNoise(0.5)
    x = torch.zeros(20000)
    assert noise(x).std().item() == pytest.approx(0.5, rel=0.03)
    assert torch.equal(noise.eval()(x), x)


def test_the_hidden_scales_of_the_mlp_do_not_train(registry) -> None:
    mlp = registry.build("encoder", "wn-mlp", 1, 28)
    layers = [m for m in mlp.modules() if isinstance(m, WeightNormLinear)]
    assert [m.direction.shape[0] for m in layers] == [1000, 500, 250, 250, 250] and mlp.feature_dim == 250
    assert all(not m.scale.requires_grad and m.bias.requires_grad for m in layers)
    assert sum(isinstance(m, GaussianNoise) for m in mlp.modules()) == 4  # none after the feature layer


def test_real_fake_accuracy_by_hand() -> None:
    real, fake = torch.tensor([2.0, -1.0, 0.5, 3.0]), torch.tensor([-2.0, 1.0])
    assert float(real_fake_accuracy(real, fake)) == pytest.approx(0.5 * (3 / 4 + 1 / 2))


def test_sgan_on_mnist_selects_the_improved_gan_recipe_and_a_given_encoder_keeps_its_own(registry) -> None:
    cfg = build.resolve(registry, RunConfig(pretext="sgan", data="mnist"))
    assert cfg.encoder == "wn-mlp" and cfg.pretext_options["generator"] == "mlp"
    assert build.schedule(registry, cfg).lr == 0.003
    conv = build.resolve(registry, RunConfig(pretext="sgan", data="mnist", encoder="dcgan-disc"))
    assert conv.pretext_options == {} and build.schedule(registry, conv).lr == 3e-4
    assert build.resolve(registry, RunConfig(pretext="sgan", data="svhn")).encoder == "dcgan-disc"


def test_a_few_dozen_improved_gan_steps_on_mnist_lower_the_supervised_loss(registry, mnist) -> None:
    cfg = build.resolve(registry, RunConfig(pretext="sgan", data="mnist"))
    torch.manual_seed(0)
    budget = split_budget(mnist.train.labels, 100, 0)
    labeled = mnist.train.subset(budget.labeled)
    pool = mnist.train.images[budget.unlabeled[:4000]]
    encoder = build.build_encoder(registry, cfg, mnist.info)
    pretext = build.build_pretext(registry, cfg, encoder, mnist.info)
    schedule = Schedule(
        epochs=1, batch_size=100, lr=3e-3, weight_decay=0.0, optimizer="adam", warmup_epochs=0
    )
    trainer = Trainer(pretext, pool, labeled, schedule, torch.device("cpu"), 0, show_progress=False)
    order = trainer.epoch_order(0)
    steps = [
        pretext.train_step(trainer.make_batch(order[i]), trainer.optimizers, trainer.model) for i in range(40)
    ]
    assert all(torch.isfinite(torch.stack(list(s.values()))).all() for s in steps)
    first = sum(float(s["supervised"]) for s in steps[:5]) / 5
    last = sum(float(s["supervised"]) for s in steps[-5:]) / 5
    assert last < 0.3 * first
    assert {"d_accuracy", "train_accuracy", "g_loss", "unsupervised"} <= set(steps[0])
    # evaluated: the moving average of the discriminator, not the trained one
    assert not torch.equal(pretext.encoder.net[1].direction, pretext.student["encoder"].net[1].direction)
    assert pretext.classifier_head()(pretext.encoder(mnist.info.normalize(pool[:8].float() / 255))).shape == (
        8,
        10,
    )


def test_a_collapse_is_named(registry, fashion) -> None:
    encoder = registry.build("encoder", "convnet", 1, 28, options={"width": 8})
    pretext = registry.build("pretext", "dcgan", encoder, fashion.info)
    assert pretext.health({"d_accuracy": 0.8, "g_loss": 2.0}) is None
    assert "the discriminator wins" in pretext.health({"d_accuracy": 1.0, "g_loss": 2.5})
    assert "generator's loss diverges" in pretext.health({"d_accuracy": 0.9, "g_loss": 25.0})
