"""The reference studies' DCGAN discriminator as an encoder: conv 32 stride 2, conv 64 stride 2 + BN, conv 128
stride 2 + BN, LeakyReLU(0.2) after each, flatten, dropout. Features: the flattened last map (2048-d on 28x28)."""

from __future__ import annotations

from torch import Tensor, nn

from sslkit import Component, UsageError, hookimpl


def _block(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    return [*layers, nn.LeakyReLU(0.2)]


class DCGANDiscriminator(nn.Module):
    def __init__(
        self, in_chans: int, image_size: int, width: int = 32, dropout: float = 0.4, batch_norm: bool = True
    ) -> None:
        super().__init__()
        if width < 1:
            raise UsageError(f"dcgan-disc option width must be at least 1, got {width}")
        if not 0 <= dropout < 1:
            raise UsageError(f"dcgan-disc option dropout must be in [0, 1), got {dropout}")
        w = width
        self.trunk = nn.Sequential(
            *_block(in_chans, w, False), *_block(w, 2 * w, batch_norm), *_block(2 * w, 4 * w, batch_norm)
        )
        side = image_size
        for _ in range(3):
            side = (side + 1) // 2  # 3x3, stride 2, padding 1
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout))
        self.feature_dim = 4 * w * side * side
        self.feature_map_channels = 4 * w

    def feature_map(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


@hookimpl
def sslkit_encoders() -> list[Component]:
    return [
        Component(
            "dcgan-disc",
            DCGANDiscriminator,
            "the reference DCGAN discriminator: three stride-2 convs (32-64-128), LeakyReLU, BN, dropout",
            {"width": 32, "dropout": 0.4, "batch_norm": True},
        )
    ]
