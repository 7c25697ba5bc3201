"""Built-in selectors (which pool images to label), one plugin module each, and the checks they share."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sslkit import UsageError
from sslkit.interfaces import SelectionContext


def available_mask(ctx: SelectionContext) -> np.ndarray:
    """Bool (N,): pool rows that may be picked (not labeled). A one-line UsageError when fewer than ``ctx.n``."""
    mask = np.ones(len(ctx.embedding), dtype=bool)
    mask[ctx.labeled.numpy()] = False
    free = int(mask.sum())
    if ctx.n > free:
        raise UsageError(
            f"cannot select {ctx.n} images: the pool holds {len(mask)}, of which {len(mask) - free} are labeled "
            f"and {free} are not; ask for at most {free}"
        )
    return mask


def as_indices(picks: list[int] | np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(picks, dtype=np.int64).reshape(-1), dtype=torch.int64)


def margin_uncertainty(probabilities: Tensor) -> np.ndarray:
    """float64 (N,): 1 - (top-1 minus top-2 probability), 1 where the classifier cannot tell its best two apart."""
    p = probabilities.detach().double().cpu()
    if p.shape[1] < 2:
        return np.zeros(len(p))
    top = p.topk(2, dim=1).values
    return (1.0 - (top[:, 0] - top[:, 1])).clamp(0, 1).numpy()


def seeded_fill(picks: list[int], mask: np.ndarray, n: int, seed: int) -> list[int]:
    """``picks`` completed to ``n`` with uniform draws (seeded) from the rows still allowed by ``mask``."""
    if len(picks) >= n:
        return picks
    rest = np.flatnonzero(mask)
    rng = np.random.default_rng(seed)
    return [*picks, *rng.permutation(rest)[: n - len(picks)].tolist()]
