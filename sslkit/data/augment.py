"""Batched augmentation: every transform takes a float batch ``(B, C, H, W)`` in [0, 1] on any device and
draws its random parameters per sample, with no Python loop over samples (the idea of airbench's
``batch_flip_lr``/``batch_crop``).

Random numbers are drawn on the CPU, from ``generator`` when given or else from torch's global CPU generator,
and then moved to the batch's device. A seeded run therefore gets the same parameters on CPU and CUDA, and
seeding the CPU generator (``torch.manual_seed``) is enough to reproduce it. Passing a CUDA generator draws on
that device instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Transform = Callable[[Tensor], Tensor]

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale
LUMA = (0.299, 0.587, 0.114)


def _rand(
    shape: int | tuple[int, ...],
    x: Tensor,
    generator: torch.Generator | None = None,
    normal: bool = False,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Uniform [0, 1) (or standard normal) numbers drawn where ``generator`` lives (CPU by default), moved to
    ``x``'s device, in ``dtype`` (default: ``x``'s floating dtype)."""
    shape = (shape,) if isinstance(shape, int) else shape
    device = generator.device if generator is not None else torch.device("cpu")
    dtype = dtype or (x.dtype if x.is_floating_point() else torch.float32)
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator, device=device).to(x.device, dtype, non_blocking=True)


def _uniform(n: int, low: float, high: float, x: Tensor, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * _rand(n, x, generator)


def _randint(n: int, low: int, high: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Integers in [low, high), one per sample."""
    return (
        low + (_rand(n, x, generator, dtype=torch.float64) * (high - low)).floor().clamp(max=high - low - 1)
    ).long()


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


# --------------------------------------------------------------------------------------- geometry


def hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image left-right with probability ``p``."""
    return _where(_rand(len(x), x, generator) < p, x.flip(-1), x)


def vflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image upside down with probability ``p``."""
    return _where(_rand(len(x), x, generator) < p, x.flip(-2), x)


def rot90(x: Tensor, k: Tensor) -> Tensor:
    """Rotate image i by ``k[i] * 90`` degrees counter-clockwise (``k`` in 0..3, square images)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rot90 needs square images, got {tuple(x.shape[-2:])}")
    k = k.to(x.device).view(-1, 1, 1, 1) % 4
    out = x
    for turns in range(1, 4):
        out = torch.where(k == turns, torch.rot90(x, turns, dims=(-2, -1)), out)
    return out


def random_rot90(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Rotate each image by a random multiple of 90 degrees; returns the images and the turns ``k`` (0..3)."""
    k = _randint(len(x), 0, 4, x, generator)
    return rot90(x, k), k


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
    tries: int = 10,
) -> Tensor:
    """Crop a random area share in ``scale`` with aspect ratio (width/height) in ``ratio`` and resize it back
    to full size (bilinear). As torchvision: up to ``tries`` draws per sample, the first that fits inside the
    image wins; a sample with none that fits keeps the whole image."""
    n, _, height, width = x.shape
    area = _uniform(n * tries, *scale, x, generator).view(n, tries)
    aspect = _uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), x, generator).view(n, tries).exp()
    w = (area * aspect * height / width).sqrt()  # crop width as a share of the image width
    h = (area / aspect * width / height).sqrt()
    fits = (w <= 1) & (h <= 1)
    first = fits.float().argmax(1, keepdim=True)  # index of the first draw that fits (0 if none does)
    any_fit = fits.any(1)
    w = torch.where(any_fit, w.gather(1, first).squeeze(1), torch.ones_like(any_fit, dtype=x.dtype))
    h = torch.where(any_fit, h.gather(1, first).squeeze(1), torch.ones_like(any_fit, dtype=x.dtype))
    cx = (_rand(n, x, generator) * 2 - 1) * (1 - w)  # centre, in [-1, 1] coordinates, crop kept inside
    cy = (_rand(n, x, generator) * 2 - 1) * (1 - h)
    zero = torch.zeros_like(w)
    theta = torch.stack([torch.stack([w, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
    return _affine(x, theta, padding_mode="border")


def random_rotate(x: Tensor, degrees: float, generator: torch.Generator | None = None) -> Tensor:
    """Rotate each image by an angle drawn uniformly from [-degrees, degrees] (counter-clockwise positive);
    corners filled with zeros."""
    angle = _uniform(len(x), -math.radians(degrees), math.radians(degrees), x, generator)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    # grid_sample's matrix maps output to input coordinates (y pointing down): the inverse rotation
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _affine(x, theta)


def random_translate(x: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by up to ``pad`` whole pixels in each direction, filling with zeros (airbench's
    batch_crop of a padded batch)."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = _randint(n, 0, 2 * pad + 1, x, generator)
    dy = _randint(n, 0, 2 * pad + 1, x, generator)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chans = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, chans, rows, cols]


# ------------------------------------------------------------------------------------------ colour


def grayscale(x: Tensor) -> Tensor:
    """ITU-R 601 luma, repeated over the channels (identity for one-channel images)."""
    if x.shape[1] == 1:
        return x
    weights = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand_as(x)


def random_grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Turn each image grey with probability ``p``."""
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
    probability ``p``, in a fixed order, clamping to [0, 1] after each step as torchvision does. Factors are
    uniform in ``[max(0, 1 - s), 1 + s]``; the hue shift is uniform in ``[-hue, hue]`` turns. Saturation and
    hue apply to RGB only; hue is a rotation about the grey axis (YIQ), close to torchvision's HSV shift."""
    n = len(x)

    def factor(strength: float) -> Tensor:
        return _uniform(n, max(0.0, 1 - strength), 1 + strength, x, generator).view(n, 1, 1, 1)

    out = (x * factor(brightness)).clamp(0, 1)
    mean = grayscale(out).mean((1, 2, 3), keepdim=True)
    out = ((out - mean) * factor(contrast) + mean).clamp(0, 1)
    if x.shape[1] == 3:
        gray = grayscale(out)
        out = ((out - gray) * factor(saturation) + gray).clamp(0, 1)
        if hue > 0:
            out = _hue_shift(out, _uniform(n, -hue, hue, x, generator)).clamp(0, 1)
    return _where(_rand(n, x, generator) < p, out, x)


def _hue_shift(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` turns, as a rotation about the grey axis in RGB space (YIQ)."""
    angle = shift * 2 * math.pi
    cos, sin = angle.cos(), angle.sin()
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    to_rgb = torch.linalg.inv(to_yiq.float()).to(x.dtype)
    rot = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = cos, -sin
    rot[:, 2, 1], rot[:, 2, 2] = sin, cos
    matrix = to_rgb @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", matrix, x)


# --------------------------------------------------------------------------------- blur and noise


def gaussian_blur(
    x: Tensor,
    sigma: tuple[float, float] = (0.1, 2.0),
    p: float = 0.5,
    kernel_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Separable Gaussian blur with a per-sample sigma uniform in ``sigma``, applied with probability ``p``.
    The kernel (odd, about a tenth of the image side by default) and the reflect padding are torchvision's."""
    n, c, h, w = x.shape
    k = kernel_size or max(3, (min(h, w) // 10) | 1)
    if k % 2 == 0:
        raise ValueError(f"gaussian_blur kernel_size must be odd, got {k}")
    s = _uniform(n, *sigma, x, generator)
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


def gaussian_noise(
    x: Tensor, std: float | tuple[float, float] = 0.1, generator: torch.Generator | None = None
) -> Tensor:
    """Add Gaussian noise and clamp to [0, 1]; ``std`` is fixed, or a range to draw each sample's from."""
    n = len(x)
    low, high = (std, std) if isinstance(std, (int, float)) else std
    sigma = _uniform(n, low, high, x, generator).view(n, 1, 1, 1)
    return (x + sigma * _rand(tuple(x.shape), x, generator, normal=True)).clamp(0, 1)


# ---------------------------------------------------------------------------------------- masking


def patch_mask(
    x: Tensor, patch: int = 4, ratio: float = 0.5, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Zero a random share ``ratio`` of the ``patch x patch`` cells of each image; returns (masked, mask) where
    mask is 1 on hidden pixels, shape ``(B, 1, H, W)``."""
    n, _, h, w = x.shape
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    cells = (_rand((n, 1, gh, gw), x, generator) < ratio).to(x.dtype)
    mask = cells.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[:, :, :h, :w]
    return x * (1 - mask), mask


def cutout(x: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero one ``size x size`` square centred at a random pixel of each image (clipped at the borders)."""
    n, _, h, w = x.shape
    cy = _randint(n, 0, h, x, generator).view(n, 1, 1) - size // 2  # top-left corner
    cx = _randint(n, 0, w, x, generator).view(n, 1, 1) - size // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (ys >= cy) & (ys < cy + size) & (xs >= cx) & (xs < cx + size)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Standardize each channel: ``(x - mean) / std``."""
    m = x.new_tensor(mean).view(1, -1, 1, 1)
    s = x.new_tensor(std).view(1, -1, 1, 1)
    return (x - m) / s


# ---------------------------------------------------------------------------------------- recipes


def simclr_view(
    x: Tensor,
    flip: bool = True,
    blur: bool = False,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    generator: torch.Generator | None = None,
) -> Tensor:
    """One SimCLR view of a whole batch: resized crop, flip, colour jitter (p 0.8), grayscale (p 0.2, RGB),
    optional blur (p 0.5)."""
    x = random_resized_crop(x, scale=crop_scale, generator=generator)
    if flip:
        x = hflip(x, generator=generator)
    x = color_jitter(x, generator=generator)
    if x.shape[1] == 3:
        x = random_grayscale(x, generator=generator)
    if blur:
        x = gaussian_blur(x, generator=generator)
    return x


def light_augment(
    x: Tensor, flip: bool = True, pad: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """The supervised / fine-tuning recipe: small translations (1/8 of the side) and, where it keeps meaning,
    horizontal flips."""
    x = random_translate(x, pad if pad is not None else max(1, x.shape[-1] // 8), generator=generator)
    return hflip(x, generator=generator) if flip else x
