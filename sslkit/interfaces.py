"""The contracts between the sslkit core and its plugins.

A plugin contributes :class:`Component` items through the hooks in :mod:`sslkit.hookspecs`. Each item
carries a name, a factory and the options that factory accepts (with their defaults, which fix their types):

* dataset factory: ``(root: Path, download: bool, **options) -> DatasetBundle``
* encoder factory: ``(in_chans: int, image_size: int, **options) -> nn.Module`` with an int ``feature_dim``;
  the module maps float ``(B, C, H, W)`` to ``(B, feature_dim)``
* pretext factory: ``(encoder: nn.Module, info: DataInfo, **options) -> Pretext``
* evaluator factory: ``(**options) -> Evaluator``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

Kind = Literal["dataset", "encoder", "pretext", "evaluator"]
KINDS: tuple[Kind, ...] = ("dataset", "encoder", "pretext", "evaluator")


@dataclass(frozen=True)
class Component:
    """One thing a plugin offers: ``name`` is what users type, ``factory`` builds it."""

    name: str
    factory: Callable[..., Any]
    summary: str
    options: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- data


@dataclass
class Split:
    """Images as uint8 ``(N, C, H, W)`` and labels: int64 ``(N,)``, or float multi-hot ``(N, K)`` for multi-label
    data (VOC marks 'difficult' objects with -1: neither positive nor negative)."""

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"Split images must be uint8 (N,C,H,W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Tensor) -> Split:
        return Split(self.images[index], self.labels[index])


@dataclass
class DataInfo:
    """What a model needs to know about the data, without the data."""

    name: str
    classes: list[str]
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    multilabel: bool = False
    flips: bool = True  # whether a horizontal flip keeps an image's meaning (not for digits)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalize(self, images: Tensor) -> Tensor:
        """float images in [0, 1] -> standardized with the dataset's per-channel mean and std."""
        mean = images.new_tensor(self.mean).view(1, -1, 1, 1)
        std = images.new_tensor(self.std).view(1, -1, 1, 1)
        return (images - mean) / std


@dataclass
class DatasetBundle:
    """What a dataset provider returns. ``unlabeled`` holds extra images with no labels (SVHN extra, STL-10
    unlabeled); the training split minus the labeled budget joins it to form the pretraining pool."""

    info: DataInfo
    train: Split
    test: Split
    unlabeled: Tensor | None = None


# ------------------------------------------------------------------------------------------ pretext


@dataclass
class Batch:
    """One training step's input, on the training device, as float images in [0, 1].

    ``labeled_images``/``labels`` are filled only for pretexts with ``uses_labels = True``."""

    images: Tensor
    labeled_images: Tensor | None = None
    labels: Tensor | None = None


class Pretext(nn.Module):
    """A pretext task built around an encoder. It owns its heads and its loss.

    The simple contract is :meth:`losses`: a dict of scalar tensors whose ``"loss"`` entry is minimized with one
    optimizer over all parameters. Pretexts that need more (adversarial ones) override :meth:`make_optimizers` and
    :meth:`train_step`. After training, ``self.encoder`` is what the run saves and evaluates (a pretext that
    keeps an averaged copy of its weights puts that copy there). ``defaults`` holds the recipe (epochs, batch_size, lr, weight_decay, optimizer) used for any
    setting the user leaves out.
    """

    defaults: dict[str, Any] = {}
    uses_labels: bool = False  # semi-supervised: each batch also carries labeled images
    trains_on: Literal["pool", "labeled"] = "pool"  # what an epoch iterates over
    supports_ddp: bool = True  # False: refuse a torchrun launch (say why in the class docstring)

    def __init__(self, encoder: nn.Module, info: DataInfo) -> None:
        super().__init__()
        self.encoder = encoder
        self.info = info

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def labeled_batch_size(self, pool_batch: int) -> int:
        """Labeled images per step of a ``uses_labels`` pretext, given the pool images per step."""
        return pool_batch

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        return self.losses(batch)

    @property
    def forward_module(self) -> nn.Module:
        """What a training step calls: the DistributedDataParallel wrapper under torchrun, else the pretext."""
        return self.__dict__.get("_ddp_wrapper", self)

    def make_optimizers(self, lr: float, weight_decay: float, optimizer: str) -> list[torch.optim.Optimizer]:
        return [make_optimizer(self.parameters(), optimizer, lr, weight_decay)]

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], scaler: Any
    ) -> dict[str, float]:
        """One optimization step; returns the loss terms as floats for the log."""
        (opt,) = optimizers
        with autocast_for(batch.images):
            terms = self.forward_module(batch)
        opt.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        scaler.step(opt)
        scaler.update()
        return {k: v.detach() for k, v in terms.items()}

    def save_artifacts(self, run_dir: Path, epoch: int) -> None:
        """Write pictures (samples, reconstructions) into the run directory after an epoch."""

    def predict(self, images: Tensor) -> Tensor | None:
        """Class logits from the pretext's own classifier, for pretexts that have one (SGAN, supervised)."""
        return None


def make_optimizer(params: Any, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=(0.5, 0.999))
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adamw or adam")


_amp_dtype: torch.dtype | None = None


def set_amp(dtype: torch.dtype | None) -> None:
    """Set by the engine: autocast dtype for CUDA training, or None for full precision."""
    global _amp_dtype
    _amp_dtype = dtype


def autocast_for(x: Tensor) -> torch.autocast:
    """The autocast context the engine chose, for the device ``x`` lives on."""
    enabled = _amp_dtype is not None and x.device.type == "cuda"
    return torch.autocast(x.device.type, dtype=_amp_dtype or torch.float32, enabled=enabled)


# -------------------------------------------------------------------------------------- evaluation


class FeatureSource(Protocol):
    def __call__(self, split: str) -> Tensor: ...


@dataclass
class EvalContext:
    """Everything an evaluator may use. ``features(name)`` returns frozen encoder features of ``labeled`` or
    ``test``, computed once and shared by all frozen-feature evaluators."""

    encoder: nn.Module
    pretext: Pretext | None
    info: DataInfo
    labeled: Split
    test: Split
    features: FeatureSource
    device: torch.device
    run_dir: Path | None
    seed: int


@dataclass
class EvalResult:
    """Scalar metrics (``accuracy`` first by convention) and paths of files written into the run directory."""

    metrics: dict[str, float]
    artifacts: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class Evaluator(Protocol):
    def evaluate(self, ctx: EvalContext) -> EvalResult: ...
