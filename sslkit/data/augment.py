"""Batched augmentation: every transform takes a float batch ``(B, C, H, W)`` in [0, 1] on any device and
draws its random parameters per sample, with no Python loop over samples (the idea of airbench's
``batch_flip_lr``/``batch_crop``).

Random numbers are drawn on the CPU, from ``generator`` when given or else from torch's global CPU generator,
and then moved to the batch's device. A seeded run therefore gets the same parameters on CPU and CUDA, and
seeding the CPU generator (``torch.manual_seed``) is enough to reproduce it. Passing a CUDA generator draws on
that device instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
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


def _full_precision(transform: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Run ``transform`` with autocast off, in the batch's own dtype. Pretexts augment inside the training step's
    autocast, which would run the transforms' small matrix products (luma, colour matrices, blur) in bfloat16
    and then mix dtypes."""

    @functools.wraps(transform)
    def in_full_precision(x: Tensor, *args, **kwargs) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return transform(x, *args, **kwargs)

    return in_full_precision


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


# --------------------------------------------------------------------------------------- geometry


def hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image left-right with probability ``p``."""
    return _where(_rand(len(x), x, generator) < p, x.flip(-1), x)


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


@_full_precision
def random_resized_crop(
    x: Tensor,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    flip_p: float = 0.0,
    tries: int = 10,
) -> Tensor:
    """Crop a random area share in ``scale`` with aspect ratio (width/height) in ``ratio`` and resize it back
    to full size (bilinear). As torchvision: up to ``tries`` draws per sample, the first that fits inside the
    image wins; a sample with none that fits keeps the whole image. ``flip_p`` also mirrors each crop
    left-right with that probability, in the same resampling pass (a crop followed by ``hflip``, for free)."""
    n, _, height, width = x.shape
    area = _uniform(n * tries, *scale, x, generator).view(n, tries)
    aspect = _uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), x, generator).view(n, tries).exp()
    w = (area * aspect * height / width).sqrt()  # crop width as a share of the image width
    h = (area / aspect * width / height).sqrt()
    fits = (w <= 1) & (h <= 1)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # index of the first draw that fits (0 if none does)
    any_fit = fits.any(1)
    one = torch.ones((), dtype=w.dtype, device=w.device)
    w = torch.where(any_fit, w.gather(1, first).squeeze(1), one)
    h = torch.where(any_fit, h.gather(1, first).squeeze(1), one)
    cx = (_rand(n, x, generator) * 2 - 1) * (1 - w)  # centre, in [-1, 1] coordinates, crop kept inside
    cy = (_rand(n, x, generator) * 2 - 1) * (1 - h)
    if flip_p > 0:
        w = torch.where(_rand(n, x, generator) < flip_p, -w, w)
    # the crop is separable: sampling columns depend on x only, rows on y only (cheaper than affine_grid)
    xs = (torch.arange(width, device=x.device, dtype=w.dtype) * 2 + 1) / width - 1  # pixel centres
    ys = (torch.arange(height, device=x.device, dtype=w.dtype) * 2 + 1) / height - 1
    gx = (w.view(n, 1, 1) * xs.view(1, 1, width) + cx.view(n, 1, 1)).expand(n, height, width)
    gy = (h.view(n, 1, 1) * ys.view(1, height, 1) + cy.view(n, 1, 1)).expand(n, height, width)
    grid = torch.stack([gx, gy], dim=-1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@_full_precision
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


@_full_precision
def grayscale(x: Tensor) -> Tensor:
    """ITU-R 601 luma, repeated over the channels (identity for one-channel images)."""
    if x.shape[1] == 1:
        return x
    return _luma(x).expand_as(x)


def _luma(x: Tensor) -> Tensor:
    """``(B, 1, H, W)`` luma of RGB images, as one small matrix product (cheaper than multiply-and-sum)."""
    n, _, h, w = x.shape
    return torch.matmul(x.new_tensor(LUMA).view(1, 1, 3), x.reshape(n, 3, h * w)).view(n, 1, h, w)


def random_grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Turn each image grey with probability ``p``."""
    return _where(_rand(len(x), x, generator) < p, grayscale(x), x)


@_full_precision
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
    probability ``p``, in that fixed order. Factors are uniform in ``[max(0, 1 - s), 1 + s]``, the hue shift
    uniform in ``[-hue, hue]`` turns; saturation and hue apply to RGB only.

    Brightness is clamped to [0, 1] as in torchvision; contrast, saturation and hue are each linear in RGB
    (hue as a rotation about the grey axis in YIQ space, close to torchvision's HSV shift), so they are fused
    into one per-sample 3x3 matrix and offset, applied in one pass and clamped once at the end. Samples not
    drawn (probability ``1 - p``) get the identity and come out unchanged."""
    n, c = x.shape[:2]

    def factor(strength: float) -> Tensor:
        return _uniform(n, max(0.0, 1 - strength), 1 + strength, x, generator)

    b, con, sat = factor(brightness), factor(contrast), factor(saturation)
    turns = _uniform(n, -hue, hue, x, generator)
    apply = _rand(n, x, generator) < p
    one = torch.ones((), dtype=b.dtype, device=b.device)
    b, con, sat = torch.where(apply, b, one), torch.where(apply, con, one), torch.where(apply, sat, one)
    out = (x * b.view(n, 1, 1, 1)).clamp_(0, 1)
    channel_means = out.mean((2, 3))
    # contrast blends towards the mean grey level (the luma of the channel means: luma is linear)
    mean = channel_means @ x.new_tensor(LUMA) if c == 3 else channel_means[:, 0]
    eye = torch.eye(c, dtype=x.dtype, device=x.device).expand(n, c, c)
    matrix = con.view(n, 1, 1) * eye
    if c == 3:
        luma = x.new_tensor(LUMA).view(1, 1, 3)
        sat_matrix = sat.view(n, 1, 1) * eye + (1 - sat.view(n, 1, 1)) * luma.expand(n, 3, 3)
        matrix = _hue_matrix(torch.where(apply, turns, torch.zeros_like(turns))) @ sat_matrix @ matrix
    matrix = torch.where(apply.view(n, 1, 1), matrix, eye)  # exact identity for samples left alone
    # saturation and hue keep greys grey, so the contrast offset (1 - c) * mean stays a grey offset
    out = torch.bmm(matrix, out.view(n, c, -1)).view_as(x)
    return out.add_(((1 - con) * mean).view(n, 1, 1, 1)).clamp_(0, 1)


def _hue_matrix(turns: Tensor) -> Tensor:
    """Per-sample RGB matrices rotating hue by ``turns`` (a rotation about the grey axis in YIQ space)."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
    )
    to_rgb = torch.linalg.inv(to_yiq).to(turns.device, turns.dtype)
    angle = turns * (2 * math.pi)
    cos, sin, zero, one = angle.cos(), angle.sin(), torch.zeros_like(angle), torch.ones_like(angle)
    rot = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], 1).view(-1, 3, 3)
    return to_rgb @ rot @ to_yiq.to(turns.device, turns.dtype)


# --------------------------------------------------------------------------------- blur and noise


@_full_precision
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


# ------------------------------------------------------------------------------------ RandAugment

# The operations of FixMatch's RandAugment (Sohn et al. 2020), as PIL defines them. Each takes the images
# that drew it and their magnitudes ``m`` in [0, 1] (signed ones already carry a random sign).
RANDAUGMENT_OPS = (
    "identity",
    "autocontrast",
    "equalize",
    "brightness",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
_GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def autocontrast(x: Tensor) -> Tensor:
    """Stretch each channel of each image to span [0, 1] (constant channels stay as they are)."""
    low = x.amin((2, 3), keepdim=True)
    high = x.amax((2, 3), keepdim=True)
    span = high - low
    return torch.where(span > 0, (x - low) / span.clamp_min(1e-12), x)


def equalize(x: Tensor) -> Tensor:
    """PIL's histogram equalization, per image and channel, on the 256 levels of ``round(255 x)``."""
    n, c, h, w = x.shape
    levels = (x * 255).round_().clamp_(0, 255).long().view(n * c, h * w)
    rows = torch.arange(n * c, device=x.device).view(-1, 1) * 256
    hist = torch.bincount((levels + rows).view(-1), minlength=n * c * 256).view(
        n * c, 256
    )  # one pass, all rows
    # PIL: step = (pixels - count of the highest level present) // 255; lut[i] = (step // 2 + cdf[i-1]) // step
    top = hist.gather(1, levels.amax(1, keepdim=True)).squeeze(1)
    step = (h * w - top) // 255
    before = hist.cumsum(1) - hist
    lut = ((step.view(-1, 1) // 2 + before) // step.clamp_min(1).view(-1, 1)).clamp_(max=255)
    out = lut.gather(1, levels).to(x.dtype).div_(255)
    return torch.where((step > 0).view(-1, 1), out, levels.to(x.dtype) / 255).view_as(x)


def _blend(degenerate: Tensor, x: Tensor, factor: Tensor) -> Tensor:
    """PIL's ImageEnhance: ``degenerate + factor * (x - degenerate)``, clamped to [0, 1]."""
    return torch.lerp(degenerate, x, factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def _smooth(x: Tensor) -> Tensor:
    """PIL's SMOOTH filter (3x3, centre weight 5, total 13) inside the image; border pixels unchanged. Summed from
    shifted views (a 1-channel convolution per image is several times slower on CPUs)."""
    h, w = x.shape[-2:]
    inner = 4 * x[..., 1:-1, 1:-1]
    for dy in range(3):
        for dx in range(3):
            inner = inner + x[..., dy : h - 2 + dy, dx : w - 2 + dx]
    out = x.clone()
    out[..., 1:-1, 1:-1] = inner / 13
    return out


def _grey_mean(x: Tensor) -> Tensor:
    grey = _luma(x) if x.shape[1] == 3 else x
    return grey.mean((1, 2, 3), keepdim=True).expand_as(x)


def posterize(x: Tensor, bits: Tensor) -> Tensor:
    """Keep the top ``bits[i]`` bits (1..8) of each 8-bit level of image i."""
    drop = (2 ** (8 - bits.to(x.device))).view(-1, 1, 1, 1).to(x.dtype)
    levels = (x * 255).round_()
    return (levels / drop).floor_().mul_(drop).div_(255)


def solarize(x: Tensor, threshold: Tensor) -> Tensor:
    """Invert every level at or above ``threshold[i]`` (in [0, 1]) in image i."""
    return torch.where(x >= threshold.view(-1, 1, 1, 1), 1 - x, x)


def _colour_op(name: str, x: Tensor, m: Tensor) -> Tensor:
    if name == "identity":
        return x
    if name == "autocontrast":
        return autocontrast(x)
    if name == "equalize":
        return equalize(x)
    factor = 1 + 0.9 * m  # brightness, contrast, sharpness: PIL factors in [0.1, 1.9]
    if name == "brightness":
        return _blend(torch.zeros_like(x), x, factor)
    if name == "contrast":
        return _blend(_grey_mean(x), x, factor)
    if name == "sharpness":
        return _blend(_smooth(x), x, factor)
    if name == "posterize":
        return posterize(x, 8 - (m.abs() * 4).round().long())  # 8 down to 4 bits
    if name == "solarize":
        return solarize(x, 1 - m.abs())
    raise ValueError(f"unknown RandAugment op {name!r}")


def _geometric_theta(name: str, m: Tensor) -> Tensor:
    """Per-sample affine matrices (grid_sample's output-to-input map) of one geometric op."""
    n = len(m)
    theta = torch.zeros(n, 2, 3, dtype=m.dtype, device=m.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if name == "rotate":  # up to 30 degrees
        angle = m * math.radians(30)
        theta[:, 0, 0], theta[:, 0, 1] = angle.cos(), -angle.sin()
        theta[:, 1, 0], theta[:, 1, 1] = angle.sin(), angle.cos()
    elif name == "shear_x":  # shear factor up to 0.3
        theta[:, 0, 1] = 0.3 * m
    elif name == "shear_y":
        theta[:, 1, 0] = 0.3 * m
    elif name == "translate_x":  # up to 30 % of the side; [-1, 1] spans the image, so 0.6 in grid units
        theta[:, 0, 2] = 0.6 * m
    elif name == "translate_y":
        theta[:, 1, 2] = 0.6 * m
    return theta


@_full_precision
def rand_augment(
    x: Tensor,
    n_ops: int = 2,
    p: float = 0.5,
    cutout_size: int | None = None,
    ops: Sequence[str] = RANDAUGMENT_OPS,
    generator: torch.Generator | None = None,
) -> Tensor:
    """FixMatch's RandAugment on a whole batch: each image draws ``n_ops`` operations from ``ops``, each with
    its own magnitude (uniform in (0, 1], a random sign for signed ops) and applied with probability ``p``,
    then one ``cutout_size`` square (default half the side) is zeroed. Geometric ops fill with zeros.

    Work is done per operation on the images that drew it (one ``grid_sample`` a round for all geometric
    ops), so the cost grows with ``n_ops``, not with the number of operations in ``ops``."""
    unknown = [op for op in ops if op not in RANDAUGMENT_OPS]
    if unknown:
        raise ValueError(f"unknown RandAugment op(s) {unknown}; choose from {', '.join(RANDAUGMENT_OPS)}")
    n = len(x)
    out = x.clone()
    for _ in range(n_ops):
        choice = _randint(n, 0, len(ops), x, generator).cpu()
        magnitude = 1 - _rand(n, x, generator, dtype=torch.float32).cpu()  # (0, 1]
        sign = torch.where(_rand(n, x, generator, dtype=torch.float32).cpu() < 0.5, -1.0, 1.0)
        applied = _rand(n, x, generator, dtype=torch.float32).cpu() < p
        signed = (magnitude * sign).to(x.device, x.dtype)
        geometric = torch.zeros(n, dtype=torch.bool)
        thetas = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
        for k, name in enumerate(ops):
            pick = applied & (choice == k)
            if not pick.any() or name == "identity":
                continue
            index = pick.nonzero().squeeze(1).to(x.device)
            if name in _GEOMETRIC:
                geometric |= pick
                thetas[index] = _geometric_theta(name, signed[index])
            else:
                out[index] = _colour_op(name, out[index], signed[index])
        if geometric.any():
            index = geometric.nonzero().squeeze(1).to(x.device)
            out[index] = _affine(out[index], thetas[index])
    size = cutout_size if cutout_size is not None else x.shape[-1] // 2
    return cutout(out, size, generator=generator) if size > 0 else out


# ----------------------------------------------------------------------------------------- mixing


def mixup(x: Tensor, alpha: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, float]:
    """mixup (Zhang et al. 2018): each image blended with a partner from the same batch,
    ``lam * x + (1 - lam) * x[partner]``, one ``lam ~ Beta(alpha, alpha)`` for the whole batch. Returns
    ``(mixed, partner, lam)``; train on ``lam * loss(out, y) + (1 - lam) * loss(out, y[partner])``, which works
    for any loss (soft, multi-hot or masked targets alike)."""
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be positive, got {alpha}")
    # torch has no seeded Beta sampler: numpy draws lambda, from a seed taken from ``generator``
    seed = int(_rand(1, x, generator, dtype=torch.float64).item() * 2**62)
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    device = generator.device if generator is not None else torch.device("cpu")
    partner = torch.randperm(len(x), generator=generator, device=device).to(x.device)
    return torch.lerp(x[partner], x, lam), partner, lam


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
    x = random_resized_crop(x, scale=crop_scale, generator=generator, flip_p=0.5 if flip else 0.0)
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
