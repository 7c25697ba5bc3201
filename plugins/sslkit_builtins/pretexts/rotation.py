"""RotNet (Gidaris et al. 2018): predict which of 0/90/180/270 degrees an image was rotated by.

Every image of a batch appears in all four rotations in that same batch, as in the official code."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import Batch, Component, DataInfo, Pretext, augment, hookimpl, mlp_head


class Rotation(Pretext):
    # One pass over the pool in batches of 64 (256 rotated images): the same 940 steps on Fashion-MNIST as the
    # official recipe's 2 epochs of 128 (0.779 linear probe on a GPU), in under 10 minutes on 2 CPU cores,
    # where small batches also run faster per image (107 vs 68 images/s at 256: benchmarks/model_step.py).
    defaults = {
        "epochs": 1,
        "batch_size": 64,
        "lr": 0.05,
        "weight_decay": 5e-4,
        "optimizer": "sgd",
        "warmup_epochs": 0.2,
    }

    def __init__(self, encoder: nn.Module, info: DataInfo, augment: bool = True, hidden: int = 1024) -> None:
        super().__init__(encoder, info)
        self.head = mlp_head(encoder.feature_dim, hidden, 4)
        self.augment = augment

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        x = batch.images
        if self.augment:
            x = augment.light_augment(x, flip=self.info.flips)
        rotated, target = augment.all_rotations(x)
        logits = self.head(self.encoder(self.info.normalize(rotated)))
        loss = F.cross_entropy(logits, target)
        return {"loss": loss, "accuracy": (logits.argmax(1) == target).float().mean()}


@hookimpl
def sslkit_pretexts() -> list[Component]:
    return [
        Component(
            "rotation",
            Rotation,
            "RotNet: predict the rotation (0/90/180/270) of every image",
        )
    ]
