"""The contracts between the sslkit core and its plugins.

A plugin contributes :class:`Component` items through the hooks in :mod:`sslkit.hookspecs`. Each item
carries a name, a factory and the options that factory accepts (with their defaults, which fix their types):

* dataset factory: ``(root: Path, download: bool, **options) -> DatasetBundle``
* encoder factory: ``(in_chans: int, image_size: int, **options) -> nn.Module`` with an int ``feature_dim``;
  the module maps float ``(B, C, H, W)`` to ``(B, feature_dim)``
* pretext factory: ``(encoder: nn.Module, info: DataInfo, **options) -> Pretext``
* evaluator factory: ``(**options) -> Evaluator``
* selector factory: ``(**options) -> Selector``: which pool images to label
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

Kind = Literal["dataset", "encoder", "pretext", "evaluator", "selector"]
KINDS: tuple[Kind, ...] = ("dataset", "encoder", "pretext", "evaluator", "selector")


@dataclass(frozen=True)
class Component:
    """One thing a plugin offers: ``name`` is what users type, ``factory`` builds it.

    The factory's keyword parameters (after the fixed positional ones) are its options: their defaults and type
    hints are what users see and what their values are checked against. ``options`` declares only what a
    signature cannot say (options a ``**kwargs`` factory accepts); a declared default must match the signature's.
    ``prefix_option``: names ``NAME:VALUE`` select this component with that option set to ``VALUE`` (``timm:vit_s``).
    ``offline_options``: what to set when the component is rebuilt only to receive saved weights (no download)."""

    name: str
    factory: Callable[..., Any]
    summary: str
    options: dict[str, Any] = field(default_factory=dict)
    prefix_option: str | None = None
    offline_options: dict[str, Any] = field(default_factory=dict)


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
    # how a file becomes one of these images (sslkit.data.images.decode_image): converted to this PIL mode ("L" or
    # "RGB") and resized to an ``image_size`` square; sslkit predict prepares new files the same way
    resize: str = "bicubic square"

    @property
    def mode(self) -> str:
        return "L" if self.in_chans == 1 else "RGB"

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
    unlabeled); the training split minus the labeled budget joins it to form the pretraining pool.

    ``labels_given``: ``train`` is exactly the labeled set a person gave (a folder with its own unlabeled pile):
    every label is used unless ``--labels`` asks for fewer. ``test`` may hold no images (a folder without a test
    split). ``train_files`` / ``unlabeled_files`` name each image's file (relative to the dataset's folder) where
    images come from files, so predictions can name them. ``record`` goes into ``config.json`` (where the labels
    came from, files skipped as unreadable, the cache). ``options``: options as the dataset resolved them (a
    relative path made absolute); the run records them in place of the given ones, so that a later command reading
    the run (resume, eval, suggest) finds the same files from any directory."""

    info: DataInfo
    train: Split
    test: Split
    unlabeled: Tensor | None = None
    labels_given: bool = False
    train_files: list[str] | None = None
    unlabeled_files: list[str] | None = None
    record: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ pretext


@dataclass
class Batch:
    """One training step's input, on the training device, as float images in [0, 1].

    ``labeled_images``/``labels`` are filled only for pretexts with ``uses_labels = True``; ``amp`` is the autocast
    precision the run chose (bfloat16 on CUDA, None for full precision): wrap forward passes in ``batch.autocast()``.
    ``index``: where ``images`` sit in the pool :meth:`Pretext.prepare` saw (for per-image state), when known."""

    images: Tensor
    labeled_images: Tensor | None = None
    labels: Tensor | None = None
    amp: torch.dtype | None = None
    index: Tensor | None = None

    def autocast(self) -> torch.autocast:
        return autocast(self.images.device, self.amp)


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or a disabled one for ``dtype=None``."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


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
    ddp_refusal: str | None = (
        None  # why this pretext cannot run under torchrun (a launch is refused), or None
    )

    def __init__(self, encoder: nn.Module, info: DataInfo) -> None:
        super().__init__()
        self.encoder = encoder
        self.info = info

    def prepare(self, pool: Tensor, labeled: Split | None) -> None:
        """Called once before training (again when a run resumes) with the uint8 pool and the labeled split, for
        pretexts that precompute something over the whole data. Must be deterministic: resume relies on it."""

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def labeled_batch_size(self, pool_batch: int) -> int:
        """Labeled images per step of a ``uses_labels`` pretext, given the pool images per step."""
        return pool_batch

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        return self.losses(batch)

    def make_optimizers(self, lr: float, weight_decay: float, optimizer: str) -> list[torch.optim.Optimizer]:
        return [make_optimizer(self.parameters(), optimizer, lr, weight_decay)]

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], model: nn.Module
    ) -> dict[str, Tensor]:
        """One optimization step; returns the detached loss terms for the log. ``model`` is what to call for the
        forward pass: this pretext, or its DistributedDataParallel wrapper under torchrun (which averages the
        gradients over the ranks)."""
        (opt,) = optimizers
        with batch.autocast():
            terms = model(batch)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        return {k: v.detach() for k, v in terms.items()}

    def health(self, record: dict[str, Any]) -> str | None:
        """After each epoch, with its record (the loss terms' means): a sentence naming a failure the numbers show
        (a collapse, a stalled loss), which the log and the report then show; None when training looks sound."""
        return None

    def pictures(self) -> dict[str, Tensor]:
        """Pictures of what the pretext learned (samples, reconstructions), drawn after each epoch: a short name
        (letters, digits, dashes) -> a float image in [0, 1], (C, H, W) (``torchvision.utils.make_grid``). The run
        directory keeps each epoch's, the report shows the latest."""
        return {}

    def classifier_head(self) -> nn.Module | None:
        """The pretext's own classifier (fixmatch, sgan, supervised): a module from encoder features to class
        logits, affine in eval mode (a linear layer, perhaps with dropout or weight norm); None without one."""
        return None


OPTIMIZERS = ("sgd", "adamw", "adam")  # what --optimizer accepts


def make_optimizer(
    params: Any, name: str, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.Optimizer:
    """The named optimizer over ``params`` that require a gradient, fused (one kernel for all parameters) where the
    device has the kernels: on CPU the optimizer step itself is ~6x (Adam) and ~3x (SGD) faster than PyTorch's
    per-parameter loop; a whole training step gains 0-5 % (benchmarks/model_step.py)."""
    params = [p for p in params if p.requires_grad]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay, fused=fused
        )
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused)
    raise ValueError(f"unknown optimizer {name!r}; choose {', '.join(OPTIMIZERS)}")


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
    amp: torch.dtype | None = None  # the run's autocast precision: wrap forward passes in ``ctx.autocast()``

    def autocast(self) -> torch.autocast:
        return autocast(self.device, self.amp)


@dataclass
class EvalResult:
    """Scalar metrics (``accuracy`` first by convention) and paths of files written into the run directory.
    ``head``: a linear classifier over the run encoder's features that the evaluator trained (the linear probe's),
    which the run may keep as its classifier."""

    metrics: dict[str, float]
    artifacts: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    head: nn.Linear | None = None


class Evaluator(Protocol):
    def evaluate(self, ctx: EvalContext) -> EvalResult: ...


# -------------------------------------------------------------------------------------------- selection


@dataclass
class SelectionContext:
    """What a selector sees: never a label of the pool.

    ``embedding``: float32 ``(N, D)``, one row per pool image, already the space to select in (e.g.
    :func:`sslkit.embedding.spectral_embedding` of pixel principal components or of encoder features).
    ``n``: how many to pick. ``labeled``: int64 indices into the pool that are already labeled (never picked
    again); may be empty. ``probabilities``: ``(N, classes)`` class probabilities of the current classifier on the
    pool, or None (a cold start). ``seed``: for every random choice; the same context gives the same picks.
    ``classes``: how many classes the labels will name where that is known (a data set's class list, the classes
    of a person's labels so far), else None."""

    embedding: Tensor
    n: int
    labeled: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    probabilities: Tensor | None = None
    seed: int = 0
    classes: int | None = None

    def __post_init__(self) -> None:
        if self.embedding.ndim != 2 or not self.embedding.dtype.is_floating_point:
            raise ValueError(
                f"embedding must be float (N, D), got {self.embedding.dtype} {tuple(self.embedding.shape)}"
            )
        self.labeled = torch.as_tensor(self.labeled, dtype=torch.int64).reshape(-1)
        size = len(self.embedding)
        if len(self.labeled) and (int(self.labeled.min()) < 0 or int(self.labeled.max()) >= size):
            raise ValueError(f"labeled indices must lie in [0, {size}), the pool's rows")
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if self.classes is not None and self.classes < 1:
            raise ValueError(f"classes must be >= 1 or None, got {self.classes}")
        if self.probabilities is not None and (
            self.probabilities.ndim != 2 or len(self.probabilities) != size
        ):
            raise ValueError(
                f"probabilities must be (N={size}, classes), got {tuple(self.probabilities.shape)}"
            )


class Selector(Protocol):
    """Chooses which pool images to label. ``needs_classifier``: whether ``select`` requires
    ``ctx.probabilities`` (False for cold-start strategies, which may still use them when given). A selector
    that never reads ``ctx.embedding`` but its length (a uniform draw) may say ``reads_embedding = False``: sslkit
    then skips computing the embedding (about half a minute on 60,000 images) and gives it no columns."""

    needs_classifier: bool

    def select(self, ctx: SelectionContext) -> Tensor:
        """``ctx.n`` distinct int64 pool indices, none in ``ctx.labeled``, deterministic given ``ctx``."""
        ...
