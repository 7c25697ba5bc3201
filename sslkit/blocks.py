"""Small reusable building blocks for plugins: heads that sit on top of an encoder's features."""

from __future__ import annotations

from torch import nn


def mlp_head(in_dim: int, hidden: int, out_dim: int, batch_norm: bool = True) -> nn.Sequential:
    """Linear -> (BatchNorm) -> ReLU -> Linear; ``hidden=0`` gives a single linear layer.

    The reference RotNet's Linear(3136, 1024) + 4-way classifier and SimCLR's projection head are both this."""
    if not hidden:
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    return nn.Sequential(
        nn.Linear(in_dim, hidden, bias=not batch_norm),
        *([nn.BatchNorm1d(hidden)] if batch_norm else []),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out_dim),
    )
