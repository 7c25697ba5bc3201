"""Convolutional autoencoder: the encoder compresses an image and a decoder built to match it reconstructs it.

The decoder starts from the encoder's last feature map when the encoder exposes one (``feature_map(x)`` and
``feature_map_channels``, as ``convnet`` does), otherwise from the feature vector (Linear -> reshape). It doubles
the resolution with transposed convolutions until it reaches the image size (resizing the last step when the size
is not a power-of-two multiple) and ends in a sigmoid: the loss is the MSE against the [0, 1] image.

Variants: ``plain``; ``denoising`` (Gaussian noise of ``noise_std`` on the input, the clean image as target);
``masked`` (a share ``mask_ratio`` of 4x4 patches zeroed; the loss counts the hidden pixels only)."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import Batch, Component, DataInfo, Pretext, UsageError, augment, hookimpl

VARIANTS = ("plain", "denoising", "masked")
MASK_PATCH = 4


def reconstruction_loss(recon: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared error, over the pixels where ``weight`` is 1 when given (``weight`` broadcasts over C)."""
    err = (recon.float() - target.float()) ** 2
    if weight is None:
        return err.mean()
    weight = weight.expand_as(err)
    return (err * weight).sum() / weight.sum().clamp_min(1)


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]


class Decoder(nn.Module):
    """``(B, C0, s, s)`` -> ``(B, out_chans, size, size)`` in [0, 1]: doublings, then an exact resize."""

    def __init__(self, c0: int, side: int, out_chans: int, size: int, width: int = 32) -> None:
        super().__init__()
        steps = max(0, math.ceil(math.log2(size / side)))
        chans = [c0] + [max(width, c0 // 2 ** (i + 1)) for i in range(steps)]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(chans):
            layers += _up(a, b)
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(chans[-1], out_chans, 3, padding=1)
        self.size = size

    def forward(self, h: Tensor) -> Tensor:
        h = self.body(h)
        if h.shape[-1] != self.size:
            h = F.interpolate(h, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return torch.sigmoid(self.out(h))


class FromVector(nn.Module):
    """Feature vector -> a small ``(c0, side, side)`` map for :class:`Decoder`."""

    def __init__(self, dim: int, c0: int, side: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, c0 * side * side), nn.ReLU())
        self.shape = (c0, side, side)

    def forward(self, z: Tensor) -> Tensor:
        return self.fc(z).view(len(z), *self.shape)


class Autoencoder(Pretext):
    defaults = {
        "epochs": 4,  # ~490 pool images/s on 2 CPU threads: ~8 min on 60k
        "batch_size": 128,
        "lr": 2e-3,
        "weight_decay": 1e-5,
        "optimizer": "adamw",
        "warmup_epochs": 0.2,
    }

    def __init__(
        self,
        encoder: nn.Module,
        info: DataInfo,
        variant: str = "plain",
        noise_std: float = 0.3,
        mask_ratio: float = 0.5,
    ) -> None:
        super().__init__(encoder, info)
        if variant not in VARIANTS:
            raise UsageError(
                f"autoencoder option variant must be one of {', '.join(VARIANTS)}; got {variant!r}"
            )
        if noise_std <= 0:
            raise UsageError(f"autoencoder option noise_std must be positive (e.g. 0.3), got {noise_std}")
        if not 0 < mask_ratio < 1:
            raise UsageError(f"autoencoder option mask_ratio must be in (0, 1) (e.g. 0.5), got {mask_ratio}")
        self.variant, self.noise_std, self.mask_ratio = variant, noise_std, mask_ratio
        self.from_map = hasattr(encoder, "feature_map") and hasattr(encoder, "feature_map_channels")
        size, chans = info.image_size, info.in_chans
        if self.from_map:
            with torch.no_grad():
                was = encoder.training
                side = encoder.eval().feature_map(torch.zeros(1, chans, size, size)).shape[-1]
                encoder.train(was)
            self.bridge: nn.Module = nn.Identity()
            c0 = int(encoder.feature_map_channels)
        else:
            side, c0 = max(2, size // 4), 128
            self.bridge = FromVector(encoder.feature_dim, c0, side)
        self.decoder = Decoder(c0, side, chans, size)
        self.preview: Tensor | None = None  # a fixed small batch for the reconstruction pictures

    def corrupt(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """The encoder's input and the pixels the loss counts (None: all of them)."""
        if self.variant == "denoising":
            return augment.gaussian_noise(x, self.noise_std, generator=generator), None
        if self.variant == "masked":
            masked, mask = augment.patch_mask(x, MASK_PATCH, self.mask_ratio, generator=generator)
            return masked, mask
        return x, None

    def reconstruct(self, x: Tensor) -> Tensor:
        h = self.info.normalize(x)
        code = self.encoder.feature_map(h) if self.from_map else self.encoder(h)
        return self.decoder(self.bridge(code))

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        x = batch.images
        if self.preview is None:
            self.preview = x[:8].detach().clone()
        inp, weight = self.corrupt(x)
        return {"loss": reconstruction_loss(self.reconstruct(inp), x, weight)}

    @torch.no_grad()
    def pictures(self) -> dict[str, Tensor]:
        """``reconstructions``: a row of inputs, of corrupted inputs (unless ``plain``), of their reconstructions."""
        if self.preview is None:
            return {}
        from torchvision.utils import make_grid

        was = self.training
        self.eval()
        x = self.preview
        gen = torch.Generator(device=x.device).manual_seed(0)  # the same corruption every epoch
        inp, _ = self.corrupt(x, gen)
        rows = [x] + ([inp] if self.variant != "plain" else []) + [self.reconstruct(inp).float()]
        self.train(was)
        return {"reconstructions": make_grid(torch.cat(rows).cpu(), nrow=len(x), padding=1)}


@hookimpl
def sslkit_pretexts() -> list[Component]:
    return [
        Component(
            "autoencoder",
            Autoencoder,
            "convolutional autoencoder (plain, denoising or masked) with a decoder matched to the encoder",
        )
    ]
