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
import copy
import math
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import Batch, Component, DataInfo, Pretext, UsageError, hookimpl, make_optimizer, update_average
from sslkit_builtins.encoders.wn_mlp import GaussianNoise, WeightNormLinear

ADAM_BETAS = (0.5, 0.999)  # the DCGAN recipe's momentum (Radford et al. 2016), for both networks

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


def real_fake_accuracy(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's real/fake accuracy from the logits of ``D(x)``: real counted right above 0, fake below."""
    return 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())


def feature_matching_loss(
    real_features: Tensor, fake_features: Tensor, norm: Literal["l1", "l2"] = "l2"
) -> Tensor:
    """Distance between the batch means of the discriminator's features, averaged over features: absolute
    (``l1``, the official Improved-GAN MNIST code) or squared (``l2``, its CIFAR-10 code)."""
    gap = real_features.float().mean(0) - fake_features.float().mean(0)
    return gap.abs().mean() if norm == "l1" else gap.pow(2).mean()


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

    @staticmethod
    def latent(n: int, dim: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, dim, device=device, generator=generator)

    def forward(self, z: Tensor) -> Tensor:
        h = self.stem(z).view(len(z), -1, 4, 4)
        x = torch.sigmoid(self.body(h))
        if self.crop:
            x = x[..., self.crop : self.crop + self.size, self.crop : self.crop + self.size]
        return x


class MLPGenerator(nn.Module):
    """The Improved-GAN MNIST generator: uniform ``z`` -> 500 -> 500 (batch norm, softplus) -> a weight-normalized
    layer with sigmoid output, reshaped to ``(B, C, size, size)``."""

    def __init__(self, latent_dim: int, out_chans: int, size: int, hidden: int = 500) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in ((latent_dim, hidden), (hidden, hidden)):
            layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b, affine=False), _Shift(b), nn.Softplus()]
        self.body = nn.Sequential(*layers)
        self.out = WeightNormLinear(hidden, out_chans * size * size, train_scale=True)
        self.out.initialized.fill_(True)  # the official code starts this layer at scale 1, without data init
        nn.init.xavier_uniform_(self.out.direction)
        self.shape = (out_chans, size, size)

    @staticmethod
    def latent(n: int, dim: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, dim, device=device, generator=generator)

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.out(self.body(z))).view(len(z), *self.shape)


class _Shift(nn.Module):
    """A learned per-feature offset: batch norm's beta without its gamma."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias


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


def _check(name: str, latent_dim: int, gen_width: int, input_noise: float) -> None:
    if latent_dim < 1 or gen_width < 1:
        raise UsageError(
            f"{name} options latent_dim and gen_width must be at least 1, got {latent_dim}, {gen_width}"
        )
    if input_noise < 0:
        raise UsageError(f"{name} option input_noise must be >= 0 (0: none), got {input_noise}")


class _GAN(Pretext):
    """Alternating discriminator/generator steps; subclasses give the two losses. While training, every image the
    discriminator sees, real or generated, gets Gaussian noise of ``input_noise`` (instance noise, Sonderby et al.
    2017): the two distributions overlap, so the discriminator cannot separate them perfectly and keeps giving
    the generator gradients."""

    ddp_refusal = (
        "its two backward passes per step, each over a different half of the model, do not go through one "
        "DistributedDataParallel forward, so the ranks' gradients would not be averaged"
    )

    def __init__(
        self,
        encoder: nn.Module,
        info: DataInfo,
        latent_dim: int,
        gen_width: int,
        input_noise: float,
        generator: str = "conv",
    ) -> None:
        super().__init__(encoder, info)
        self.latent_dim, self.instance_noise = latent_dim, GaussianNoise(input_noise)
        if generator == "mlp":
            self.generator: nn.Module = MLPGenerator(latent_dim, info.in_chans, info.image_size)
        else:
            self.generator = Generator(latent_dim, info.in_chans, info.image_size, gen_width)
        fixed = self.generator.latent(64, latent_dim, torch.device("cpu"), torch.Generator().manual_seed(0))
        self.register_buffer("fixed_z", fixed)
        self.register_buffer("first_g_loss", torch.zeros((), dtype=torch.float64))

    def discriminator_parameters(self) -> list[nn.Parameter]:
        gen = {id(p) for p in self.generator.parameters()}
        return [p for p in self.parameters() if id(p) not in gen]

    def make_optimizers(self, lr: float, weight_decay: float, optimizer: str) -> list[torch.optim.Optimizer]:
        return [
            make_optimizer(self.discriminator_parameters(), optimizer, lr, weight_decay, ADAM_BETAS),
            make_optimizer(self.generator.parameters(), optimizer, lr, 0.0, ADAM_BETAS),
        ]

    def d_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def health(self, record: dict[str, Any]) -> str | None:
        """Names a collapse: the discriminator right on every real and fake image for a whole epoch, or the
        generator's loss at ten times its first epoch's."""
        if record.get("d_accuracy", 0.0) >= 0.999:
            return (
                f"the discriminator wins: real/fake accuracy {record['d_accuracy']:.3f} over the whole epoch, so the "
                "generator gets no useful gradient (a collapse); lower --lr or stop at an earlier epoch"
            )
        g_loss = record.get("g_loss")
        if g_loss is not None:
            if not self.first_g_loss:
                self.first_g_loss.fill_(g_loss)
            elif g_loss > 10 * float(self.first_g_loss):
                return f"the generator's loss diverges: {g_loss:.4g} against {float(self.first_g_loss):.4g} in epoch 1"
        return None

    def g_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], model: nn.Module
    ) -> dict[str, Tensor]:
        opt_d, opt_g = optimizers
        x = batch.images
        z = self.generator.latent(len(x), self.latent_dim, x.device)
        with batch.autocast():
            fake = self.generator(z)
            d_terms = self.d_losses(batch, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        d_terms["loss"].backward()
        opt_d.step()
        with batch.autocast():
            g_terms = self.g_losses(batch, fake)
        opt_g.zero_grad(set_to_none=True)
        g_terms["g_loss"].backward(inputs=list(self.generator.parameters()))
        opt_g.step()
        return {k: v.detach() for k, v in {**d_terms, **g_terms}.items()}

    @torch.no_grad()
    def pictures(self) -> dict[str, Tensor]:
        from torchvision.utils import make_grid

        was = self.generator.training
        self.generator.eval()
        samples = self.generator(self.fixed_z).float().cpu()
        self.generator.train(was)
        return {"samples": make_grid(samples, nrow=8, padding=1)}


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
        self,
        encoder: nn.Module,
        info: DataInfo,
        latent_dim: int = 100,
        gen_width: int = 32,
        input_noise: float = 0.5,  # without it the discriminator wins from epoch 1 (docs/benchmarks.md)
    ) -> None:
        _check("dcgan", latent_dim, gen_width, input_noise)
        super().__init__(encoder, info, latent_dim, gen_width, input_noise)
        self.critic = nn.Linear(encoder.feature_dim, 1)

    def discriminate(self, x: Tensor) -> Tensor:
        return self.critic(self.encoder(self.info.normalize(self.instance_noise(x)))).squeeze(1)

    def d_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        real_logits = self.discriminate(batch.images)
        with frozen_bn_stats(self):
            fake_logits = self.discriminate(fake)
        loss = d_loss_nonsaturating(real_logits, fake_logits)
        return {"loss": loss, "d_accuracy": real_fake_accuracy(real_logits, fake_logits)}

    def g_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        with frozen_bn_stats(self):
            return {"g_loss": g_loss_nonsaturating(self.discriminate(fake))}


class SGAN(_GAN):
    """Semi-supervised GAN. The discriminator is ``encoder -> head`` with K class logits and the fake class's
    logit fixed at 0 (Salimans et al.'s parametrization: an explicit K+1-th output is redundant). With ``ema`` > 0
    the run saves and evaluates a moving average of the discriminator (``self.encoder``, ``self.classifier``), as
    the Improved-GAN code tests its averaged weights; the trained network is ``self.student``.

    The recipe for MNIST and Fashion-MNIST is the paper's MNIST model (``wn-mlp`` trunk, an MLP generator, a
    weight-normalized head after Gaussian noise, feature matching by the absolute gap of the means,
    Adam 3e-3, batch 100); elsewhere the DCGAN-style convolutional one."""

    uses_labels = True
    defaults = {
        "epochs": 1,  # ~660 pool images/s on 2 CPU threads (Xeon, AVX-512): ~1.5 min on 60k
        "batch_size": 100,
        "lr": 3e-4,
        "weight_decay": 0.0,
        "optimizer": "adam",
        "warmup_epochs": 0.0,
        "eval": ["head", "linear"],  # the discriminator's K classes, and a probe of its features
        "encoder": "dcgan-disc",
        "data": {
            name: {
                "epochs": 40,  # MNIST-100: ~0.97 after 20 epochs, ~0.98 after 40 (docs/benchmarks.md)
                "lr": 3e-3,
                "encoder": "wn-mlp",
                "pretext_options": {
                    "generator": "mlp",
                    "feature_matching": "l1",
                    "head": "weight-norm",
                    "head_noise": 0.5,
                    "dropout": 0.0,
                    "ema": 0.999,
                },
            }
            for name in ("mnist", "fashion-mnist")
        },
    }

    def __init__(
        self,
        encoder: nn.Module,
        info: DataInfo,
        latent_dim: int = 100,
        gen_width: int = 32,
        feature_matching: Literal["l1", "l2", "off"] = "l2",
        unsup_weight: float = 1.0,
        input_noise: float = 0.3,
        dropout: float = 0.5,
        generator: Literal["conv", "mlp"] = "conv",
        head: Literal["linear", "weight-norm"] = "linear",
        head_noise: float = 0.0,
        ema: float = 0.0,
    ) -> None:
        _check("sgan", latent_dim, gen_width, input_noise)
        if unsup_weight < 0 or head_noise < 0 or not 0 <= dropout < 1 or not 0 <= ema < 1:
            raise UsageError(
                "sgan options need unsup_weight and head_noise >= 0, dropout in [0, 1) and ema in [0, 1); "
                f"got {unsup_weight}, {head_noise}, {dropout}, {ema}"
            )
        if info.multilabel:
            raise UsageError("sgan needs single-label data; this dataset is multi-label")
        linear = (
            WeightNormLinear(encoder.feature_dim, info.num_classes, train_scale=True)
            if head == "weight-norm"
            else nn.Linear(encoder.feature_dim, info.num_classes)
        )
        classifier = nn.Sequential(nn.Dropout(dropout), GaussianNoise(head_noise), linear)
        student = nn.ModuleDict({"encoder": encoder, "classifier": classifier})
        average = student
        if ema:
            average = copy.deepcopy(student)
            for p in average.parameters():
                p.requires_grad_(False)
        super().__init__(average["encoder"], info, latent_dim, gen_width, input_noise, generator)
        self.student, self.classifier = student, average["classifier"]
        self.feature_matching, self.unsup_weight = feature_matching, unsup_weight
        self.ema = ema
        self.register_buffer("average_steps", torch.zeros((), dtype=torch.long))

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.student.parameters() if p.requires_grad]

    def discriminate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits and encoder features of [0, 1] images (noised while training), by the trained network."""
        features = self.student["encoder"](self.info.normalize(self.instance_noise(x)))
        return self.student["classifier"](features), features

    def d_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        assert batch.labeled_images is not None and batch.labels is not None, "sgan needs labeled batches"
        n_lab = len(batch.labeled_images)
        logits, _ = self.discriminate(torch.cat([batch.labeled_images, batch.images]))
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
            "d_accuracy": real_fake_accuracy(
                real_logits.float().logsumexp(1), fake_logits.float().logsumexp(1)
            ),
        }
        return terms

    def g_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        with frozen_bn_stats(self):
            fake_logits, fake_features = self.discriminate(fake)
            if self.feature_matching == "off":
                lse = fake_logits.float().logsumexp(1)
                return {"g_loss": (F.softplus(lse) - lse).mean()}  # -log D(fake)
            # the real images' features under the discriminator as it is now, after this step's update (as the
            # official code computes both moments): the D step's features are one update stale
            with torch.no_grad():
                _, real_features = self.discriminate(batch.images)
        return {"g_loss": feature_matching_loss(real_features, fake_features, self.feature_matching)}

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], model: nn.Module
    ) -> dict[str, Tensor]:
        terms = super().train_step(batch, optimizers, model)
        if self.ema:
            self.average_steps += 1
            average = nn.ModuleDict({"encoder": self.encoder, "classifier": self.classifier})
            update_average(average, self.student, self.ema, int(self.average_steps))
        return terms

    def classifier_head(self) -> nn.Module:
        return self.classifier


@hookimpl
def sslkit_pretexts() -> list[Component]:
    return [
        Component(
            "dcgan",
            DCGAN,
            "DCGAN: the encoder is the discriminator's trunk, trained against a generator",
        ),
        Component(
            "sgan",
            SGAN,
            "semi-supervised GAN (Improved GAN): K-class discriminator + implicit fake class, feature matching",
        ),
    ]
