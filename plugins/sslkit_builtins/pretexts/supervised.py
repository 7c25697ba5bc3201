"""The supervised baseline: no pretext, the encoder and a linear classifier trained on the labeled split alone.

An epoch is one pass over the labeled images (one step for 100 labels at the default batch size), so the recipe
counts many epochs. ``augment`` adds small random translations, and flips where the dataset allows them."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import Batch, Component, DataInfo, Pretext, UsageError, augment, hookimpl


class Supervised(Pretext):
    trains_on = "labeled"
    defaults = {
        "epochs": 300,
        "batch_size": 256,
        "lr": 1e-3,
        "weight_decay": 5e-4,
        "optimizer": "adamw",
        "warmup_epochs": 10,
        "eval": ["head", "linear"],  # its own classifier, and a probe of its features
    }

    def __init__(
        self, encoder: nn.Module, info: DataInfo, augment: bool = True, dropout: float = 0.5
    ) -> None:
        super().__init__(encoder, info)
        if info.multilabel:
            raise UsageError("the supervised pretext needs single-label data; this dataset is multi-label")
        if not 0 <= dropout < 1:
            raise UsageError(f"supervised option dropout must be in [0, 1), got {dropout}")
        self.augment = augment
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.feature_dim, info.num_classes))

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        assert batch.labels is not None, "the supervised pretext trains on the labeled split"
        x = batch.images
        if self.augment:
            x = augment.light_augment(x, flip=self.info.flips)
        logits = self.classifier(self.encoder(self.info.normalize(x)))
        loss = F.cross_entropy(logits.float(), batch.labels)
        return {"loss": loss, "accuracy": (logits.argmax(1) == batch.labels).float().mean()}

    def classifier_head(self) -> nn.Module:
        return self.classifier


@hookimpl
def sslkit_pretexts() -> list[Component]:
    return [
        Component(
            "supervised",
            Supervised,
            "baseline: encoder + linear classifier trained on the labeled images only",
        )
    ]
