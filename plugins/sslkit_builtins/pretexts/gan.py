"""Adversarial pretexts whose discriminator trunk IS the encoder being learned.

* ``dcgan`` (Radford et al. 2016): real/fake discriminator = encoder + a linear head; non-saturating loss.
* ``sgan`` (Salimans et al. 2016, "Improved GAN"): the discriminator is a K-class classifier whose K+1-th
  "fake" logit is fixed at 0, so ``D(x) = Z / (Z + 1)`` with ``Z = sum_k exp(l_k)``: supervised cross-entropy on
  the labeled images, real/fake on the pool and on generated images, and feature matching for the generator.

Both own two Adam optimizers (beta1 0.5) and take one discriminator step then one generator step per batch.
Generated images never update BatchNorm running statistics, so the encoder's eval-mode features describe real data.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import Batch, Component, DataInfo, Pretext, UsageError, hookimpl
from sslkit.interfaces import autocast_for, make_optimizer

# ------------------------------------------------------------------------------------------ losses


def d_loss_nonsaturating(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-log D(real) - log(1 - D(fake))`` with ``D = sigmoid(logit)``, averaged over each batch."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: Tensor) -> Tensor:
    """``-log D(fake)``: the generator's non-saturating loss."""
    return F.softplus(-fake_logits).mean()


def sgan_unsupervised_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Real/fake loss of a K-class discriminator with an implicit fake logit of 0:
    ``0.5 * (mean -log D(real) + mean -log(1 - D(fake)))`` with ``log D(x) = lse(l) - softplus(lse(l))``."""
    lse_real, lse_fake = real_logits.float().logsumexp(1), fake_logits.float().logsumexp(1)
    return 0.5 * ((F.softplus(lse_real) - lse_real).mean() + F.softplus(lse_fake).mean())


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Squared distance between the batch means of the discriminator's features, averaged over features."""
    return (real_features.float().mean(0) - fake_features.float().mean(0)).pow(2).mean()


# ------------------------------------------------------------------------------------------ models


class Generator(nn.Module):
    """Latent ``z`` -> ``(B, C, size, size)`` in [0, 1]: a 4x4 map doubled by transposed convolutions up to the
    next power of two, then centre-cropped to ``size`` (28 -> generated at 32)."""

    def __init__(self, latent_dim: int, out_chans: int, size: int, width: int = 32) -> None:
        super().__init__()
        full = max(4, 2 ** math.ceil(math.log2(size)))
        steps = int(math.log2(full)) - 2
        c = width * 2 ** max(0, steps - 1)
        self.stem = nn.Sequential(
            nn.Linear(latent_dim, c * 16, bias=False), nn.BatchNorm1d(c * 16), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for _ in range(steps - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        last = nn.ConvTranspose2d(c, out_chans, 4, 2, 1) if steps else nn.Conv2d(c, out_chans, 3, padding=1)
        self.body = nn.Sequential(*layers, last)
        self.size, self.crop = size, (full - size) // 2

    def forward(self, z: Tensor) -> Tensor:
        h = self.stem(z).view(len(z), -1, 4, 4)
        x = torch.sigmoid(self.body(h))
        if self.crop:
            x = x[..., self.crop : self.crop + self.size, self.crop : self.crop + self.size]
        return x


@contextlib.contextmanager
def frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """BatchNorm still normalizes with the batch's statistics but leaves its running averages alone."""
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.momentum))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in saved:
            m.momentum = momentum


def _check(name: str, latent_dim: int, gen_width: int) -> None:
    if latent_dim < 1 or gen_width < 1:
        raise UsageError(
            f"{name} options latent_dim and gen_width must be at least 1, got {latent_dim}, {gen_width}"
        )


class _GAN(Pretext):
    """Alternating discriminator/generator steps; subclasses give the two losses.

    Not under torchrun: its two backward passes per step, each over a different half of the model, do not go
    through one DistributedDataParallel forward, so the ranks' gradients would not be averaged."""

    supports_ddp = False

    def __init__(self, encoder: nn.Module, info: DataInfo, latent_dim: int, gen_width: int) -> None:
        super().__init__(encoder, info)
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, info.in_chans, info.image_size, gen_width)
        fixed = torch.randn(64, latent_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("fixed_z", fixed)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        gen = {id(p) for p in self.generator.parameters()}
        return [p for p in self.parameters() if id(p) not in gen]

    def make_optimizers(self, lr: float, weight_decay: float, optimizer: str) -> list[torch.optim.Optimizer]:
        return [
            make_optimizer(self.discriminator_parameters(), optimizer, lr, weight_decay),
            make_optimizer(self.generator.parameters(), optimizer, lr, 0.0),
        ]

    def d_losses(self, batch: Batch, fake: Tensor) -> tuple[dict[str, Tensor], Any]:
        raise NotImplementedError

    def g_losses(self, batch: Batch, fake: Tensor, cache: Any) -> dict[str, Tensor]:
        raise NotImplementedError

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], scaler: Any
    ) -> dict[str, float]:
        opt_d, opt_g = optimizers
        x = batch.images
        z = torch.randn(len(x), self.latent_dim, device=x.device)
        with autocast_for(x):
            fake = self.generator(z)
            d_terms, cache = self.d_losses(batch, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(d_terms["loss"]).backward()
        scaler.step(opt_d)
        with autocast_for(x):
            g_terms = self.g_losses(batch, fake, cache)
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(g_terms["g_loss"]).backward(inputs=list(self.generator.parameters()))
        scaler.step(opt_g)
        scaler.update()
        return {k: v.detach() for k, v in {**d_terms, **g_terms}.items()}

    @torch.no_grad()
    def save_artifacts(self, run_dir: Path, epoch: int) -> None:
        from torchvision.utils import save_image

        was = self.generator.training
        self.generator.eval()
        samples = self.generator(self.fixed_z).float().cpu()
        self.generator.train(was)
        save_image(samples, run_dir / f"samples-epoch{epoch}.png", nrow=8, padding=1)


class DCGAN(_GAN):
    defaults = {
        "epochs": 2,  # ~1,000 pool images/s on 2 CPU threads (Xeon, AVX-512): ~2 min on 60k
        "batch_size": 128,
        "lr": 2e-4,
        "weight_decay": 0.0,
        "optimizer": "adam",
        "warmup_epochs": 0.0,
    }

    def __init__(
        self, encoder: nn.Module, info: DataInfo, latent_dim: int = 100, gen_width: int = 32
    ) -> None:
        _check("dcgan", latent_dim, gen_width)
        super().__init__(encoder, info, latent_dim, gen_width)
        self.critic = nn.Linear(encoder.feature_dim, 1)

    def discriminate(self, x: Tensor) -> Tensor:
        return self.critic(self.encoder(self.info.normalize(x))).squeeze(1)

    def d_losses(self, batch: Batch, fake: Tensor) -> tuple[dict[str, Tensor], Any]:
        real_logits = self.discriminate(batch.images)
        with frozen_bn_stats(self):
            fake_logits = self.discriminate(fake)
        loss = d_loss_nonsaturating(real_logits, fake_logits)
        accuracy = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
        return {"loss": loss, "d_accuracy": accuracy}, None

    def g_losses(self, batch: Batch, fake: Tensor, cache: Any) -> dict[str, Tensor]:
        with frozen_bn_stats(self):
            return {"g_loss": g_loss_nonsaturating(self.discriminate(fake))}


class SGAN(_GAN):
    """Semi-supervised GAN. The discriminator is ``encoder -> dropout -> Linear(K)`` with the fake class's logit
    fixed at 0 (Salimans et al.'s parametrization: an explicit K+1-th output is redundant). Training adds
    Gaussian noise of ``input_noise`` to every image the discriminator sees."""

    uses_labels = True
    defaults = {
        "epochs": 1,  # ~660 pool images/s on 2 CPU threads (Xeon, AVX-512): ~1.5 min on 60k
        "batch_size": 100,
        "lr": 3e-4,
        "weight_decay": 0.0,
        "optimizer": "adam",
        "warmup_epochs": 0.0,
    }

    def __init__(
        self,
        encoder: nn.Module,
        info: DataInfo,
        latent_dim: int = 100,
        gen_width: int = 32,
        feature_matching: bool = True,
        unsup_weight: float = 1.0,
        input_noise: float = 0.3,
        dropout: float = 0.5,
    ) -> None:
        _check("sgan", latent_dim, gen_width)
        if unsup_weight < 0 or input_noise < 0 or not 0 <= dropout < 1:
            raise UsageError(
                "sgan options need unsup_weight >= 0, input_noise >= 0 and dropout in [0, 1); "
                f"got {unsup_weight}, {input_noise}, {dropout}"
            )
        if info.multilabel:
            raise UsageError("sgan needs single-label data; this dataset is multi-label")
        super().__init__(encoder, info, latent_dim, gen_width)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.feature_dim, info.num_classes))
        self.feature_matching, self.unsup_weight, self.input_noise = (
            feature_matching,
            unsup_weight,
            input_noise,
        )

    def discriminate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits and encoder features of [0, 1] images (noised while training)."""
        if self.training and self.input_noise:
            x = x + self.input_noise * torch.randn_like(x)
        features = self.encoder(self.info.normalize(x))
        return self.classifier(features), features

    def d_losses(self, batch: Batch, fake: Tensor) -> tuple[dict[str, Tensor], Any]:
        assert batch.labeled_images is not None and batch.labels is not None, "sgan needs labeled batches"
        n_lab = len(batch.labeled_images)
        logits, features = self.discriminate(torch.cat([batch.labeled_images, batch.images]))
        lab_logits, real_logits = logits[:n_lab], logits[n_lab:]
        with frozen_bn_stats(self):
            fake_logits, _ = self.discriminate(fake)
        supervised = F.cross_entropy(lab_logits.float(), batch.labels)
        unsupervised = sgan_unsupervised_loss(real_logits, fake_logits)
        terms = {
            "loss": supervised + self.unsup_weight * unsupervised,
            "supervised": supervised,
            "unsupervised": unsupervised,
            "train_accuracy": (lab_logits.argmax(1) == batch.labels).float().mean(),
        }
        return terms, features[n_lab:].detach()

    def g_losses(self, batch: Batch, fake: Tensor, cache: Any) -> dict[str, Tensor]:
        with frozen_bn_stats(self):
            fake_logits, fake_features = self.discriminate(fake)
        if self.feature_matching:
            return {"g_loss": feature_matching_loss(cache, fake_features)}
        lse = fake_logits.float().logsumexp(1)
        return {"g_loss": (F.softplus(lse) - lse).mean()}  # -log D(fake)

    def predict(self, images: Tensor) -> Tensor:
        return self.classifier(self.encoder(images))


@hookimpl
def sslkit_pretexts() -> list[Component]:
    return [
        Component(
            "dcgan",
            DCGAN,
            "DCGAN: the encoder is the discriminator's trunk, trained against a generator",
            {"latent_dim": 100, "gen_width": 32},
        ),
        Component(
            "sgan",
            SGAN,
            "semi-supervised GAN (Improved GAN): K-class discriminator + implicit fake class, feature matching",
            {
                "latent_dim": 100,
                "gen_width": 32,
                "feature_matching": True,
                "unsup_weight": 1.0,
                "input_noise": 0.3,
                "dropout": 0.5,
            },
        ),
    ]
