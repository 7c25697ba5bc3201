"""timm backbones as encoders, adapted to small images (3x3 stride-1 stem, no max-pool below 64 px)."""

from __future__ import annotations

import timm
from torch import nn

from sslkit import Component, UsageError, hookimpl


def create(
    in_chans: int, image_size: int, model_name: str = "resnet50", pretrained: bool = False
) -> nn.Module:
    if not timm.list_models(model_name, pretrained=pretrained) and model_name not in timm.list_models():
        close = timm.list_models(f"*{model_name}*")[:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise UsageError(f"unknown timm model {model_name!r}{hint}; `timm.list_models()` lists them")
    try:
        model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, in_chans=in_chans)
    except Exception as exc:
        if pretrained:
            raise UsageError(
                f"could not fetch pretrained weights for timm model {model_name!r} ({type(exc).__name__}); "
                "connect to the internet once (weights are cached) or drop pretrained"
            ) from None
        raise
    if image_size < 64:
        _small_image_stem(model, in_chans)
    model.feature_dim = model.num_features
    return model


def _small_image_stem(model: nn.Module, in_chans: int) -> None:
    """Replace a ResNet-style 7x7/2 stem and 3x3/2 max-pool, which shrink a 32 px image to 8 px at once."""
    conv = getattr(model, "conv1", None)
    if isinstance(conv, nn.Conv2d) and conv.stride != (1, 1):
        model.conv1 = nn.Conv2d(in_chans, conv.out_channels, 3, stride=1, padding=1, bias=False)
    if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        model.maxpool = nn.Identity()


def resnet18(in_chans: int, image_size: int, pretrained: bool = False) -> nn.Module:
    return create(in_chans, image_size, "resnet18", pretrained)


@hookimpl
def sslkit_encoders() -> list[Component]:
    return [
        Component(
            "resnet18",
            resnet18,
            "ResNet-18 (timm), 3x3 stem and no max-pool below 64 px",
            {"pretrained": False},
        ),
        Component(
            "timm",
            create,
            "any timm model, as timm:NAME (e.g. timm:resnet50)",
            {"model_name": "resnet50", "pretrained": False},
        ),
    ]
