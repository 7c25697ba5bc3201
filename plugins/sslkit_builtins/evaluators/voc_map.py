"""Multi-label classification (PASCAL VOC 2007): per-class average precision and their mean.

Targets are 1 (positive), 0 (negative) or -1 (only 'difficult' objects: neither, ignored by the loss and by AP).
``mode=linear``: one linear layer on frozen standardized features, minimizing ``C * sum BCE + ||W||^2 / 2`` with
full-batch L-BFGS, ``C`` by k-fold cross-validation (mAP) on the labeled split. ``mode=finetune``: the encoder and
the layer trained end to end (see :mod:`finetune`), the layer starting from the linear solution.

Two APs per class: ``ap`` is the area under the step-wise precision-recall curve (scikit-learn's
``average_precision_score``), ``ap_11pt`` the VOC 2007 devkit's 11-point interpolation. A class with no positive
test image has no AP; it is reported as None and left out of both means."""

from __future__ import annotations

import copy
from functools import partial

import torch
from torch import Tensor
from torch.nn import functional as F

from sslkit import (
    C_GRID,
    Classifier,
    Component,
    EvalContext,
    EvalResult,
    UsageError,
    augment,
    hookimpl,
    linear_head,
    standardization,
)
from sslkit_builtins.evaluators.finetune import train_end_to_end
from sslkit_builtins.evaluators.metrics import average_precision, voc07_average_precision


def masked_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy over the entries whose target is 0 or 1 (-1 entries are ignored)."""
    keep = (target >= 0).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target.clamp(min=0).to(logits.dtype), reduction="none")
    return (loss * keep).sum() / keep.sum().clamp_min(1)


def fit_multilabel(x: Tensor, y: Tensor, c: float, max_iter: int = 200) -> tuple[Tensor, Tensor]:
    """Weights ``(D, K)`` and bias ``(K,)`` minimizing ``C * sum masked BCE + ||W||^2 / 2``, in float64.

    With fewer images than features the minimizer lies in the span of the images (representer theorem), so it
    is found as ``W = X^T A`` over the ``(N, K)`` matrix ``A``: the same solution, far fewer unknowns."""
    x, y = x.double(), y.double()
    keep = (y >= 0).double()
    dual = len(x) < x.shape[1]
    gram = x @ x.T if dual else None
    a = torch.zeros(len(x) if dual else x.shape[1], y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [a, b],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        history_size=10,
        line_search_fn="strong_wolfe",
    )
    scale = 1.0 / len(x)

    def closure() -> Tensor:
        opt.zero_grad()
        if gram is not None:
            ka = gram @ a
            logits, norm = ka + b, (a * ka).sum()
        else:
            logits, norm = x @ a + b, (a * a).sum()
        bce = F.binary_cross_entropy_with_logits(logits, y.clamp(min=0), reduction="none")
        loss = (bce * keep).sum() * scale + norm * scale / (2 * c)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w = x.T @ a.detach() if dual else a.detach()
    return w, b.detach()


def ap_table(scores: Tensor, target: Tensor, classes: list[str]) -> tuple[dict, dict]:
    """Per-class APs (None without positives) and the means over the classes that have one."""
    ap = {name: average_precision(scores[:, i], target[:, i]) for i, name in enumerate(classes)}
    ap11 = {name: voc07_average_precision(scores[:, i], target[:, i]) for i, name in enumerate(classes)}
    defined = [v for v in ap.values() if v is not None]
    defined11 = [v for v in ap11.values() if v is not None]
    if not defined:
        raise UsageError(
            "no class has a positive test image, so mAP is undefined; check the test split's labels"
        )
    means = {"mAP": sum(defined) / len(defined), "mAP_11pt": sum(defined11) / len(defined11)}
    return means, {"ap": ap, "ap_11pt": ap11}


def mean_ap(scores: Tensor, target: Tensor) -> float:
    values = [average_precision(scores[:, i], target[:, i]) for i in range(target.shape[1])]
    defined = [v for v in values if v is not None]
    return sum(defined) / max(1, len(defined))


def choose_c(x: Tensor, y: Tensor, grid: list[float], folds: int, seed: int) -> tuple[float, dict]:
    folds = min(folds, len(x))
    if folds < 2 or len(grid) == 1:
        return float(grid[len(grid) // 2]), {}
    gen = torch.Generator().manual_seed(seed)
    fold = torch.randperm(len(x), generator=gen) % folds
    scores = {}
    for c in grid:
        held_scores = torch.empty(y.shape, dtype=torch.float64)
        for f in range(folds):
            held = fold == f
            w, b = fit_multilabel(x[~held], y[~held], c)
            held_scores[held] = x[held].double() @ w + b
        scores[c] = mean_ap(held_scores, y)
    best = max(grid, key=lambda c: (scores[c], -c))
    return float(best), {str(c): s for c, s in scores.items()}


class VocMAP:
    def __init__(
        self,
        mode: str = "linear",
        c_grid: list = C_GRID,
        folds: int = 3,
        steps: int = 300,
        batch_size: int = 64,
        lr: float = 1e-3,
        encoder_lr_mult: float = 0.1,
    ) -> None:
        if mode not in ("linear", "finetune"):
            raise UsageError(f"voc-map option mode must be 'linear' or 'finetune', got {mode!r}")
        try:
            self.c_grid = [float(c) for c in c_grid]
        except (TypeError, ValueError):
            raise UsageError(f"voc-map option c_grid must be a list of numbers, got {c_grid!r}") from None
        if not self.c_grid or min(self.c_grid) <= 0:
            raise UsageError(f"voc-map option c_grid must hold positive numbers, got {c_grid!r}")
        if folds < 2 or steps < 1 or batch_size < 1 or lr <= 0 or encoder_lr_mult < 0:
            raise UsageError(
                "voc-map options: folds >= 2, steps >= 1, batch_size >= 1, lr > 0 and encoder_lr_mult >= 0"
            )
        self.mode, self.folds, self.steps, self.batch_size = mode, folds, steps, batch_size
        self.lr, self.encoder_lr_mult = lr, encoder_lr_mult

    def evaluate(self, ctx: EvalContext) -> EvalResult:
        if not ctx.info.multilabel:
            raise UsageError("voc-map is for multi-label data (voc2007); use --eval linear or knn here")
        classes = ctx.info.classes
        y, test_y = ctx.labeled.labels.cpu().double(), ctx.test.labels.cpu().double()
        if len(y) == 0:
            raise UsageError("the labeled split is empty; voc-map needs --labels N or --labels all")
        absent = [name for i, name in enumerate(classes) if not bool((y[:, i] == 1).any())]
        if absent:
            raise UsageError(
                f"class {absent[0]!r} has no positive image among the {len(y)} labeled ones "
                f"({len(absent)} such class(es)); raise --labels or use --labels all"
            )
        x = ctx.features("labeled")
        mean, std = standardization(x)
        xs = (x - mean) / std
        c, cv = choose_c(xs, y, self.c_grid, self.folds, ctx.seed)
        w, b = fit_multilabel(xs, y, c)
        details: dict = {"mode": self.mode, "C": c, "cv_mAP": cv}
        if self.mode == "linear":
            train_scores = xs.double() @ w + b
            test_scores = ((ctx.features("test") - mean) / std).double() @ w + b
        else:
            head = linear_head(w, b, mean, std).to(ctx.device)
            model = Classifier(copy.deepcopy(ctx.encoder), head, ctx.info)
            train_end_to_end(
                model,
                ctx.labeled,
                masked_bce,
                partial(augment.light_augment, flip=ctx.info.flips),
                self.steps,
                self.batch_size,
                self.lr,
                self.encoder_lr_mult,
                0.05,
                ctx.device,
                ctx.seed,
                amp=ctx.amp,
            )
            train_scores = model.logits(ctx.labeled.images).double()
            test_scores = model.logits(ctx.test.images).double()
        metrics, per_class = ap_table(test_scores, test_y, classes)
        metrics["train_mAP"] = mean_ap(train_scores, y)
        details.update(per_class)
        undefined = [name for name, v in per_class["ap"].items() if v is None]
        if undefined:
            details["undefined_ap"] = (
                f"no positive test image for {', '.join(undefined)}: AP undefined (None), left out of the means"
            )
        details["classes"] = classes
        return EvalResult(metrics, details=details)


@hookimpl
def sslkit_evaluators() -> list[Component]:
    return [
        Component(
            "voc-map",
            VocMAP,
            "multi-label mean average precision (VOC07 11-point and area); linear head or fine-tuning",
        )
    ]
