"""Batched augmentation: hand checks, per-sample independence, determinism under a seed, CPU == CUDA."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslkit.data import augment as A


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_images(n: int = 64, c: int = 3, side: int = 16) -> torch.Tensor:
    """``n`` copies of one random image, so any difference between outputs comes from per-sample parameters."""
    return torch.rand(1, c, side, side, generator=gen(123)).expand(n, c, side, side).contiguous()


# every random transform, as (name, callable(x, generator) -> tensor)
RANDOM = {
    "hflip": lambda x, g: A.hflip(x, generator=g),
    "rot90": lambda x, g: A.random_rot90(x, generator=g)[0],
    "translate": lambda x, g: A.random_translate(x, 3, generator=g),
    "crop": lambda x, g: A.random_resized_crop(x, generator=g),
    "jitter": lambda x, g: A.color_jitter(x, p=1.0, generator=g),
    "grayscale": lambda x, g: A.random_grayscale(x, p=0.5, generator=g),
    "blur": lambda x, g: A.gaussian_blur(x, p=1.0, kernel_size=5, generator=g),
    "noise": lambda x, g: A.gaussian_noise(x, (0.05, 0.2), generator=g),
    "cutout": lambda x, g: A.cutout(x, 5, generator=g),
    "mask": lambda x, g: A.patch_mask(x, 4, 0.5, generator=g)[0],
    "simclr": lambda x, g: A.simclr_view(x, blur=True, generator=g),
    "light": lambda x, g: A.light_augment(x, generator=g),
}


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_seeded_determinism_shape_dtype_and_per_sample_params(name: str) -> None:
    x = same_images()
    fn = RANDOM[name]
    a, b = fn(x, gen(7)), fn(x, gen(7))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b), "same seed, different output"
    assert not torch.equal(a, fn(x, gen(8))), "the seed is ignored"
    distinct = {tuple(img.flatten().tolist()) for img in a}
    assert len(distinct) > 1, "every sample got the same parameters"


def test_global_cpu_generator_seeds_it_too() -> None:
    x = same_images()
    torch.manual_seed(3)
    a = A.simclr_view(x)
    torch.manual_seed(3)
    assert torch.equal(a, A.simclr_view(x))


def test_hflip_of_a_known_tensor() -> None:
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    assert torch.equal(
        A.hflip(x, p=1.0), torch.tensor([[[[2.0, 1, 0], [5, 4, 3]]], [[[8, 7, 6], [11, 10, 9]]]])
    )
    assert torch.equal(A.hflip(x, p=0.0), x)


def test_rot90_matches_torch_rot90_per_sample() -> None:
    x = torch.rand(8, 2, 5, 5, generator=gen())
    k = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    out = A.rot90(x, k)
    for i in range(8):
        assert torch.equal(out[i], torch.rot90(x[i], int(k[i]), dims=(-2, -1)))
    rotated, turns = A.random_rot90(x, generator=gen(1))
    for i in range(8):
        assert torch.equal(rotated[i], torch.rot90(x[i], int(turns[i]), dims=(-2, -1)))
    assert turns.min() >= 0 and turns.max() <= 3
    both, labels = A.all_rotations(x)
    assert torch.equal(both[8 * 3 + 2], torch.rot90(x[2], 3, dims=(-2, -1))) and labels[8 * 3 + 2] == 3


def test_rotation_by_90_degrees_through_the_arbitrary_angle_path() -> None:
    x = torch.rand(1, 1, 6, 6, generator=gen())
    quarter = A._affine(x, torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]]))
    assert torch.allclose(quarter, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)


def test_translate_moves_pixels_by_whole_steps() -> None:
    x = torch.rand(32, 1, 8, 8, generator=gen()) + 1  # > 0, so zero padding shows
    out = A.random_translate(x, 2, generator=gen(5))
    for i in range(32):
        ok = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.zeros_like(x[i])
                src = x[i, :, max(0, dy) : 8 + min(0, dy), max(0, dx) : 8 + min(0, dx)]
                shifted[:, max(0, -dy) : 8 + min(0, -dy), max(0, -dx) : 8 + min(0, -dx)] = src
                ok |= torch.equal(out[i], shifted)
        assert ok, f"sample {i} is not a whole-pixel shift"


def test_crop_of_scale_one_ratio_one_is_identity_and_crops_zoom_in() -> None:
    x = torch.rand(4, 3, 12, 12, generator=gen())
    same = A.random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen())
    assert torch.allclose(same, x, atol=1e-5)
    # a 1/4-area crop of a left-right ramp spans about half the ramp's range
    ramp = torch.linspace(0, 1, 64).expand(2, 1, 64, 64).contiguous()
    half = A.random_resized_crop(ramp, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=gen())
    span = half[:, 0, 0, -1] - half[:, 0, 0, 0]
    assert torch.allclose(span, torch.full_like(span, 0.5), atol=0.03)


def test_grayscale_weights() -> None:
    red, green, blue = torch.eye(3).view(3, 3, 1, 1).expand(3, 3, 2, 2)
    for img, w in zip((red, green, blue), (0.299, 0.587, 0.114)):
        assert torch.allclose(A.grayscale(img.unsqueeze(0)), torch.full((1, 3, 2, 2), w))
    one = torch.rand(2, 1, 4, 4)
    assert torch.equal(A.grayscale(one), one)


def test_color_jitter_identity_at_zero_strength_and_brightness_factor() -> None:
    x = torch.rand(6, 3, 8, 8, generator=gen()) * 0.5 + 0.1
    assert torch.allclose(A.color_jitter(x, 0, 0, 0, 0, p=1.0, generator=gen()), x, atol=1e-6)
    out = A.color_jitter(x, brightness=0.5, contrast=0, saturation=0, hue=0, p=1.0, generator=gen(2))
    factors = (out / x).flatten(1)
    assert torch.allclose(factors, factors[:, :1].expand_as(factors), atol=1e-4)  # one factor per image
    assert ((factors[:, 0] >= 0.5) & (factors[:, 0] <= 1.5)).all() and factors[:, 0].std() > 0
    grey = torch.full((2, 3, 4, 4), 0.5)
    assert torch.allclose(A.color_jitter(grey, 0, 0, 0.4, 0.5, p=1.0), grey, atol=1e-5)  # hue keeps greys


def test_blur_matches_torchvision_for_a_fixed_sigma() -> None:
    from torchvision.transforms.v2 import functional as TF

    x = torch.rand(3, 3, 16, 16, generator=gen())
    ours = A.gaussian_blur(x, sigma=(1.3, 1.3), p=1.0, kernel_size=5)
    assert torch.allclose(ours, TF.gaussian_blur(x, [5, 5], [1.3, 1.3]), atol=1e-5)


def test_noise_statistics() -> None:
    x = torch.full((4, 1, 64, 64), 0.5)
    out = A.gaussian_noise(x, 0.1, generator=gen())
    assert abs((out - x).std().item() - 0.1) < 0.005 and abs((out - x).mean().item()) < 0.005


def test_cutout_and_patch_mask_hide_what_they_say() -> None:
    x = torch.ones(200, 1, 16, 16)
    holes = (A.cutout(x, 5, generator=gen()) == 0).sum((1, 2, 3))
    assert holes.max() == 25 and holes.min() >= 9  # 5x5, clipped to at least 3x3 at a corner
    masked, mask = A.patch_mask(x, 4, 0.5, generator=gen())
    assert torch.equal(masked, 1 - mask) and mask.shape == (200, 1, 16, 16)
    assert abs(mask.mean().item() - 0.5) < 0.05
    cells = mask[:, :, ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert torch.equal(cells, mask)  # whole 4x4 cells


def test_normalize() -> None:
    x = torch.rand(2, 3, 4, 4, generator=gen())
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = A.normalize(x, mean, std)
    for c in range(3):
        assert torch.allclose(out[:, c], (x[:, c] - mean[c]) / std[c])


def test_bfloat16_and_float64_keep_their_dtype() -> None:
    for dtype in (torch.bfloat16, torch.float64):
        x = torch.rand(4, 3, 8, 8, generator=gen()).to(dtype)
        assert A.simclr_view(x, blur=True, generator=gen()).dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_draw_the_same_parameters() -> None:
    x = torch.rand(32, 3, 32, 32, generator=gen())
    for name, fn in RANDOM.items():
        cpu = fn(x, gen(11))
        cuda = fn(x.cuda(), gen(11)).cpu()
        assert torch.allclose(cpu, cuda, atol=1e-4), name
    # the global CPU generator drives CUDA batches too
    torch.manual_seed(4)
    a = A.simclr_view(x)
    torch.manual_seed(4)
    assert torch.allclose(a, A.simclr_view(x.cuda()).cpu(), atol=1e-4)


def test_random_resized_crop_falls_back_to_the_whole_image() -> None:
    x = torch.rand(3, 1, 8, 8, generator=gen())
    # an aspect ratio of 9 with the whole area never fits: torchvision keeps the whole image then
    out = A.random_resized_crop(x, scale=(1.0, 1.0), ratio=(9.0, 9.0), generator=gen())
    assert torch.allclose(out, x, atol=1e-5)
    assert math.isclose(F.mse_loss(out, x).item(), 0.0, abs_tol=1e-10)


def test_crop_flip_is_a_mirror_and_contrast_saturation_match_torchvision() -> None:
    from torchvision.transforms.v2 import functional as TF

    x = torch.rand(4, 3, 12, 12, generator=gen()) * 0.6 + 0.2
    mirrored = A.random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen(), flip_p=1.0)
    assert torch.allclose(mirrored, x.flip(-1), atol=1e-5)
    for name, kwargs, reference in [
        ("contrast", {"contrast": 0.3}, TF.adjust_contrast),
        ("saturation", {"saturation": 0.3}, TF.adjust_saturation),
    ]:
        params = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, **kwargs}
        out = A.color_jitter(x, **params, p=1.0, generator=gen(9))
        anchor = A.grayscale(x).mean((1, 2, 3), keepdim=True) if name == "contrast" else A.grayscale(x)
        factors = (
            ((out - anchor) / (x - anchor)).flatten(1).median(1).values
        )  # out = f * x + (1 - f) * anchor
        assert ((factors > 0.69) & (factors < 1.31)).all() and factors.std() > 0, name
        for i in range(4):
            assert torch.allclose(out[i], reference(x[i], float(factors[i])), atol=1e-4), name


def test_mixup_blends_each_image_with_its_partner_by_one_lambda() -> None:
    x = torch.rand(8, 1, 5, 5, generator=gen(1))
    mixed, partner, lam = A.mixup(x, 1.0, generator=gen(2))
    assert 0 <= lam <= 1 and sorted(partner.tolist()) == list(range(8))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[partner])
    again, partner2, lam2 = A.mixup(x, 1.0, generator=gen(2))
    assert torch.equal(again, mixed) and torch.equal(partner2, partner) and lam2 == lam
    # a small alpha puts lambda near 0 or 1 (Beta(0.05, 0.05) is U-shaped); a large one near 1/2
    lams = [A.mixup(x, 0.05, generator=gen(s))[2] for s in range(200)]
    assert sum(min(v, 1 - v) < 0.05 for v in lams) > 150
    lams = [A.mixup(x, 50.0, generator=gen(s))[2] for s in range(200)]
    assert all(abs(v - 0.5) < 0.25 for v in lams)
    with pytest.raises(ValueError, match="alpha"):
        A.mixup(x, 0.0)
