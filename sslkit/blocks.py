"""Small reusable building blocks for plugins: heads on top of an encoder's features, moving averages of weights."""

from __future__ import annotations

import torch
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


@torch.no_grad()
def update_average(average: nn.Module, live: nn.Module, decay: float, step: int) -> None:
    """One step of an exponential moving average of ``live`` into ``average`` (same architecture): parameters move
    by ``1 - decay``, buffers (batch-norm statistics) are copied. At ``step`` t (1-based) the decay is at most
    ``(1 + t) / (10 + t)``, as TensorFlow's ExponentialMovingAverage with ``num_updates``: short runs do not
    evaluate their initialization."""
    decay = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(average.parameters()), list(live.parameters()), 1 - decay)
    for avg, new in zip(average.buffers(), live.buffers()):
        avg.copy_(new)
