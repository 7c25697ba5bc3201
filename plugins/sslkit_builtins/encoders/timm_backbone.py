"""timm backbones as encoders, adapted to small images (3x3 stride-1 stem, no max-pool below 64 px).

timm is imported when a backbone is built, not when the plugin registers: importing it (and torchvision, and
torch._dynamo through it) takes 3 s, which every sslkit command would pay otherwise."""

from __future__ import annotations

import socket

from torch import nn

from sslkit import Component, UsageError, hookimpl


def create(
    in_chans: int, image_size: int, model_name: str = "resnet50", pretrained: bool = False
) -> nn.Module:
    import timm

    if not timm.list_models(model_name, pretrained=pretrained) and model_name not in timm.list_models():
        close = timm.list_models(f"*{model_name}*")[:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise UsageError(f"unknown timm model {model_name!r}{hint}; `timm.list_models()` lists them")
    if pretrained and not _weights_cached(model_name) and not _hub_reachable():
        raise UsageError(_no_weights(model_name, "the Hugging Face Hub is not reachable"))
    try:
        model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, in_chans=in_chans)
    except Exception as exc:
        if pretrained:
            raise UsageError(_no_weights(model_name, type(exc).__name__)) from None
        raise
    if image_size < 64:
        _small_image_stem(model, in_chans)
    model.feature_dim = model.num_features
    return model


def _no_weights(model_name: str, why: str) -> str:
    return (
        f"could not fetch pretrained weights for timm model {model_name!r} ({why}); run once with internet "
        "access (they are cached under $HF_HOME, default ~/.cache/huggingface), copy that cache to this machine, "
        "or drop --encoder-opt pretrained=true to start from random weights"
    )


def _weights_cached(model_name: str) -> bool:
    """Whether the weights timm would download for ``model_name`` are already in the Hugging Face cache."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(model_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return True  # weights from elsewhere (a URL, a file): let timm try and report
    return any(
        isinstance(try_to_load_from_cache(hub_id, name), str)
        for name in ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin")
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe, so that an offline machine fails at once instead of after minutes of retries."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


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
            offline_options={"pretrained": False},
        ),
        Component(
            "timm",
            create,
            "any timm model, as timm:NAME (e.g. timm:resnet50)",
            prefix_option="model_name",
            offline_options={"pretrained": False},
        ),
    ]
