"""``random``: a uniform draw from the unlabeled pool, what a person labeling the first images at hand does."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from sslkit import Component, hookimpl
from sslkit.interfaces import SelectionContext
from sslkit_builtins.selectors import as_indices, available_mask


class RandomPick:
    """Uniform over the unlabeled pool, seeded by ``ctx.seed``."""

    needs_classifier = False
    reads_embedding = False  # the pool's size only

    def select(self, ctx: SelectionContext) -> Tensor:
        free = np.flatnonzero(available_mask(ctx))
        return as_indices(np.random.default_rng(ctx.seed).permutation(free)[: ctx.n])


@hookimpl
def sslkit_selectors() -> list[Component]:
    return [Component("random", RandomPick, "uniform draw from the unlabeled pool (the baseline)")]
