"""Batched augmentation: every transform takes a float batch ``(B, C, H, W)`` in [0, 1] on any device and
draws its random parameters per sample, with no Python loop over samples (the idea of airbench's
``batch_flip_lr``/``batch_crop``). Randomness comes from torch's global generator of the batch's device, or from
``generator`` when given, so a seeded run is reproducible on CPU and CUDA alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Transform = Callable[[Tensor], Tensor]


def _rand(n: int, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    return torch.rand(n, device=x.device, generator=generator)


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


def hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image left-right with probability ``p``."""
    return _where(_rand(len(x), x, generator) < p, x.flip(-1), x)


def vflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    return _where(_rand(len(x), x, generator) < p, x.flip(-2), x)


def rot90(x: Tensor, k: Tensor) -> Tensor:
    """Rotate image i by ``k[i] * 90`` degrees counter-clockwise (``k`` in 0..3)."""
    out = x.clone()
    for turns in range(1, 4):
        sel = k == turns
        if sel.any():
            out[sel] = torch.rot90(x[sel], turns, dims=(-2, -1))
    return out


def all_rotations(x: Tensor) -> tuple[Tensor, Tensor]:
    """The RotNet batch: every image in all four rotations, and the rotation labels 0..3."""
    rotated = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(len(x))
    return rotated, labels


def _affine(x: Tensor, theta: Tensor, padding_mode: str = "zeros") -> Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def random_resized_crop(
    x: Tensor,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Crop a random area share in ``scale`` with aspect ratio in ``ratio`` and resize it back to full size."""
    n = len(x)
    area = torch.empty(n, device=x.device).uniform_(*scale, generator=generator)
    log_r = torch.empty(n, device=x.device).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator
    )
    aspect = log_r.exp()
    w = (area * aspect).sqrt().clamp(max=1.0)  # crop width as a share of the image width
    h = (area / aspect).sqrt().clamp(max=1.0)
    cx = (_rand(n, x, generator) * 2 - 1) * (1 - w)  # centre, in [-1, 1] coordinates, crop kept inside
    cy = (_rand(n, x, generator) * 2 - 1) * (1 - h)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = w, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    return _affine(x, theta, padding_mode="border")


def random_rotate(x: Tensor, degrees: float, generator: torch.Generator | None = None) -> Tensor:
    """Rotate each image by an angle drawn uniformly from [-degrees, degrees]; corners filled with zeros."""
    angle = (_rand(len(x), x, generator) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    return _affine(x, theta)


def random_translate(x: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by up to ``pad`` pixels in each direction, filling with zeros (airbench's batch_crop)."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chans = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, chans, rows, cols]


def grayscale(x: Tensor) -> Tensor:
    """ITU-R 601 luma, repeated over the channels (identity for one-channel images)."""
    if x.shape[1] == 1:
        return x
    weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand_as(x)


def random_grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    return _where(_rand(len(x), x, generator) < p, grayscale(x), x)


def color_jitter(
    x: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample brightness, contrast, saturation and hue jitter (SimCLR's strengths), applied with
    probability ``p``, in a fixed order. Saturation and hue apply to RGB only."""
    n = len(x)

    def factor(strength: float) -> Tensor:
        return (1 + (_rand(n, x, generator) * 2 - 1) * strength).view(n, 1, 1, 1)

    out = x * factor(brightness)
    mean = (
        out.mean(dim=(1, 2, 3), keepdim=True)
        if x.shape[1] == 1
        else grayscale(out).mean((1, 2, 3), keepdim=True)
    )
    out = (out - mean) * factor(contrast) + mean
    if x.shape[1] == 3:
        gray = grayscale(out)
        out = (out - gray) * factor(saturation) + gray
        if hue > 0:
            out = _hue_shift(out.clamp(0, 1), (_rand(n, x, generator) * 2 - 1) * hue)
    out = out.clamp(0, 1)
    return _where(_rand(n, x, generator) < p, out, x)


def _hue_shift(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` turns, as a rotation about the grey axis in RGB space (YIQ)."""
    angle = shift * 2 * math.pi
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    to_rgb = torch.linalg.inv(to_yiq)
    rot = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = cos[:, 0, 0], -sin[:, 0, 0]
    rot[:, 2, 1], rot[:, 2, 2] = sin[:, 0, 0], cos[:, 0, 0]
    matrix = to_rgb @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", matrix, x)


def gaussian_blur(
    x: Tensor,
    sigma: tuple[float, float] = (0.1, 2.0),
    p: float = 0.5,
    kernel_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Separable Gaussian blur with a per-sample sigma, applied with probability ``p``."""
    n, c, h, w = x.shape
    k = kernel_size or max(3, (min(h, w) // 10) | 1)
    s = torch.empty(n, device=x.device).uniform_(*sigma, generator=generator)
    offsets = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * s.view(-1, 1) ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (n, k)
    weight = kernel.repeat_interleave(c, 0)  # one kernel per (sample, channel) group
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(
        F.pad(flat, (k // 2, k // 2, 0, 0), mode="reflect"), weight.view(n * c, 1, 1, k), groups=n * c
    )
    flat = F.conv2d(
        F.pad(flat, (0, 0, k // 2, k // 2), mode="reflect"), weight.view(n * c, 1, k, 1), groups=n * c
    )
    return _where(_rand(n, x, generator) < p, flat.view(n, c, h, w), x)


def gaussian_noise(x: Tensor, std: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    return (x + std * noise).clamp(0, 1)


def patch_mask(
    x: Tensor, patch: int = 4, ratio: float = 0.5, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Zero a random share ``ratio`` of the ``patch x patch`` cells of each image; returns (masked, mask) where
    mask is 1 on hidden pixels, shape ``(B, 1, H, W)``."""
    n, _, h, w = x.shape
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    cells = (torch.rand(n, 1, gh, gw, device=x.device, generator=generator) < ratio).to(x.dtype)
    mask = cells.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[:, :, :h, :w]
    return x * (1 - mask), mask


def cutout(x: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero one ``size x size`` square at a random position in each image."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    hole = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    m = x.new_tensor(mean).view(1, -1, 1, 1)
    s = x.new_tensor(std).view(1, -1, 1, 1)
    return (x - m) / s


def simclr_view(
    x: Tensor, flip: bool = True, blur: bool = False, crop_scale: tuple[float, float] = (0.2, 1.0)
) -> Tensor:
    """One SimCLR view of a whole batch: resized crop, flip, colour jitter, grayscale (RGB), optional blur."""
    x = random_resized_crop(x, scale=crop_scale)
    if flip:
        x = hflip(x)
    x = color_jitter(x)
    if x.shape[1] == 3:
        x = random_grayscale(x)
    if blur:
        x = gaussian_blur(x)
    return x


def light_augment(x: Tensor, flip: bool = True, pad: int | None = None) -> Tensor:
    """The supervised / fine-tuning recipe: small translations (1/8 of the side) and, where it keeps meaning,
    horizontal flips."""
    x = random_translate(x, pad if pad is not None else max(1, x.shape[-1] // 8))
    return hflip(x) if flip else x
