"""Label budgets: which training images keep their labels. Balanced per class and seeded."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sslkit.errors import UsageError


@dataclass
class LabelBudget:
    labeled: Tensor  # indices into the training split, sorted
    unlabeled: Tensor  # the rest of the training split, sorted

    @classmethod
    def of(cls, labeled: Tensor, n: int) -> LabelBudget:
        """The images ``labeled`` (indices into a training split of ``n``) labeled, every other one in the pool."""
        labeled = torch.as_tensor(labeled, dtype=torch.int64).sort().values
        rest = torch.ones(n, dtype=torch.bool)
        rest[labeled] = False
        return cls(labeled, rest.nonzero().flatten())

    @property
    def digest(self) -> str:
        """A short hash of the chosen indices, recorded in config.json to prove two runs saw the same labels."""
        return hashlib.sha256(self.labeled.numpy().astype("int64").tobytes()).hexdigest()[:16]


def split_budget(
    labels: Tensor, n_labels: int | None, seed: int, per_class: int | None = None, names: Sequence[str] = ()
) -> LabelBudget:
    """Pick ``n_labels`` indices balanced over classes (``per_class`` each, if given), seeded; ``names``: the
    classes' names, for errors.

    ``n_labels=None`` (``--labels all``) with no ``per_class`` keeps every label. When ``n_labels`` is not a multiple of the number of classes, the
    remainder goes one each to randomly chosen classes. Multi-label targets (2-D) are drawn uniformly.
    """
    n = len(labels)
    everything = torch.arange(n)
    if n_labels is None and per_class is None:
        return LabelBudget(everything, everything[:0])
    if n_labels == 0 and per_class is None:  # no labels yet: everything is pool
        return LabelBudget(everything[:0], everything)
    gen = torch.Generator().manual_seed(seed)
    if labels.ndim > 1:
        if per_class is not None:
            raise UsageError(
                "--labels-per-class needs single-label data; use --labels N for multi-label data"
            )
        _check(n_labels, n)
        chosen = torch.randperm(n, generator=gen)[:n_labels]
    else:
        classes = torch.unique(labels)
        k = len(classes)
        if per_class is not None:
            if per_class < 1:
                raise UsageError(f"--labels-per-class must be a positive integer, got {per_class}")
            quota = torch.full((k,), per_class)
        else:
            _check(n_labels, n)
            if n_labels < k:
                raise UsageError(
                    f"--labels {n_labels} would leave {k - n_labels} of the {k} classes without a single label; "
                    f"use --labels {k} or more (one per class at least)"
                )
            quota = torch.full((k,), n_labels // k)
            quota[torch.randperm(k, generator=gen)[: n_labels % k]] += 1
        chosen_parts = []
        for c, q in zip(classes.tolist(), quota.tolist()):
            members = (labels == c).nonzero().flatten()
            if q > len(members):
                name = repr(names[c]) if c < len(names) else c
                raise UsageError(
                    f"class {name} has only {len(members)} training images but the budget asks for {q}; "
                    "lower --labels/--labels-per-class"
                )
            chosen_parts.append(members[torch.randperm(len(members), generator=gen)[:q]])
        chosen = torch.cat(chosen_parts)
    return LabelBudget.of(chosen, n)


def _check(n_labels: int | None, n: int) -> None:
    if n_labels is None or n_labels < 1:
        raise UsageError(f"--labels must be a positive integer or 'all', got {n_labels}")
    if n_labels > n:
        raise UsageError(
            f"--labels {n_labels} is more than the {n} training images; use at most {n} or 'all'"
        )
