"""The reference studies' RotNet encoder: six 3x3 convolutions (32, 32, 32, 64, 64, 64) with two max-pools.

Its features are the flattened last feature map (3136-d on 28x28 images): a linear probe reads them better than the
1024-d layer the reference put on top (0.736 vs 0.685 after one epoch of rotation on Fashion-MNIST-100), so that
layer belongs to the pretext's head. ``feature_dim=1024`` restores it as part of the encoder. ``pool="avg"`` reads
the last map by global average pooling instead (``2 * width`` features): what a classifier trained end to end
(FixMatch) learns faster with."""

from __future__ import annotations

from torch import Tensor, nn

from sslkit import Component, UsageError, hookimpl


def _conv(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return layers


class ConvNet(nn.Module):
    def __init__(
        self,
        in_chans: int,
        image_size: int,
        width: int = 32,
        feature_dim: int = 0,
        batch_norm: bool = True,
        pool: str = "flatten",
    ) -> None:
        super().__init__()
        if pool not in ("flatten", "avg"):
            raise UsageError(f"convnet option pool must be 'flatten' or 'avg', got {pool!r}")
        w1, w2 = width, 2 * width
        self.trunk = nn.Sequential(
            *_conv(in_chans, w1, batch_norm),
            *_conv(w1, w1, batch_norm),
            *_conv(w1, w1, batch_norm),
            nn.MaxPool2d(2),
            *_conv(w1, w2, batch_norm),
            *_conv(w2, w2, batch_norm),
            *_conv(w2, w2, batch_norm),
            nn.MaxPool2d(2),
        )
        side = 1 if pool == "avg" else image_size // 4
        flat = w2 * side * side
        if feature_dim < 0:
            raise ValueError(
                f"feature_dim must be 0 (the flattened feature map) or positive, got {feature_dim}"
            )
        reduce: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if pool == "avg" else []
        self.fc: nn.Module = nn.Sequential(*reduce, nn.Flatten())
        if feature_dim:
            self.fc = nn.Sequential(
                *reduce,
                nn.Flatten(),
                nn.Linear(flat, feature_dim, bias=not batch_norm),
                *([nn.BatchNorm1d(feature_dim)] if batch_norm else []),
                nn.ReLU(inplace=True),
            )
        self.feature_dim = feature_dim or flat
        self.feature_map_channels = w2  # for decoders that start from the last feature map

    def feature_map(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.trunk(x))


@hookimpl
def sslkit_encoders() -> list[Component]:
    return [
        Component(
            "convnet",
            ConvNet,
            "six 3x3 convs (32-32-32-64-64-64) with max-pooling; features: the flattened last map",
        )
    ]
