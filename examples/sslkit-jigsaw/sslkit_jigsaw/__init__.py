"""The 2x2 jigsaw-puzzle pretext: predict which of the 24 tile permutations shuffled an image."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import Batch, Component, DataInfo, Pretext, hookimpl

PERMUTATIONS = torch.tensor(list(itertools.permutations(range(4))))  # (24, 4)


def shuffle_tiles(images: Tensor, perm_index: Tensor) -> Tensor:
    """Cut each image into 2x2 tiles and put tile ``PERMUTATIONS[k][j]`` at position ``j``, for the whole batch."""
    n, c, h, w = images.shape
    th, tw = h // 2, w // 2
    tiles = (
        images[:, :, : 2 * th, : 2 * tw]
        .reshape(n, c, 2, th, 2, tw)
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(n, 4, c, th, tw)
    )
    order = PERMUTATIONS.to(images.device)[perm_index]  # (n, 4)
    shuffled = tiles[torch.arange(n, device=images.device).unsqueeze(1), order]
    out = shuffled.reshape(n, 2, 2, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, 2 * th, 2 * tw)
    return F.pad(out, (0, w - 2 * tw, 0, h - 2 * th))


class Jigsaw(Pretext):
    defaults = {"epochs": 5, "batch_size": 128, "lr": 0.05, "optimizer": "sgd"}

    def __init__(self, encoder: nn.Module, info: DataInfo, hidden: int = 256) -> None:
        super().__init__(encoder, info)
        self.head = nn.Sequential(nn.Linear(encoder.feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, 24))

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        target = torch.randint(0, 24, (len(batch.images),), device=batch.images.device)
        logits = self.head(self.encoder(self.info.normalize(shuffle_tiles(batch.images, target))))
        return {
            "loss": F.cross_entropy(logits, target),
            "accuracy": (logits.argmax(1) == target).float().mean(),
        }


@hookimpl
def sslkit_pretexts() -> list[Component]:
    return [
        Component(
            "jigsaw",
            Jigsaw,
            "solve 2x2 jigsaw puzzles: which of 24 permutations shuffled the tiles",
        )  # its options (hidden) come from Jigsaw's signature
    ]
