"""Metrics on tensors: top-k accuracy, per-class accuracy, confusion matrix; average precision for
multi-label data (scikit-learn's area under the PR curve and the VOC 2007 11-point version)."""

from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(target: Tensor, pred: Tensor, num_classes: int) -> Tensor:
    """Rows are true classes, columns predicted classes (scikit-learn's convention)."""
    flat = target.long() * num_classes + pred.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def topk_accuracy(logits: Tensor, target: Tensor, k: int) -> float:
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == target.view(-1, 1)).any(1).double().mean())


def classification_report(
    logits: Tensor, target: Tensor, classes: list[str]
) -> tuple[dict[str, float], dict]:
    """Metrics (accuracy, top-5 when there are more than 5 classes, mean per-class accuracy) and details
    (per-class accuracy, confusion matrix)."""
    k = len(classes)
    pred = logits.argmax(1)
    cm = confusion_matrix(target, pred, k)
    support = cm.sum(1)
    per_class = [float(d) / float(n) if n else None for d, n in zip(cm.diag(), support)]
    present = [a for a in per_class if a is not None]  # classes absent from the test split have no accuracy
    metrics = {"accuracy": float((pred == target).double().mean())}
    if k > 5:
        metrics["top5"] = topk_accuracy(logits, target, 5)
    metrics["mean_class_accuracy"] = sum(present) / max(1, len(present))
    details = {
        "per_class_accuracy": dict(zip(classes, per_class)),
        "confusion_matrix": cm.tolist(),
        "classes": classes,
    }
    return metrics, details


# ------------------------------------------------------------------------------------ multi-label


def _pr_points(scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Precision and recall at each distinct score threshold, highest threshold first.

    ``target`` holds 1 (positive), 0 (negative) and -1 (ignored: VOC's 'difficult'). Tied scores form one
    threshold, as in scikit-learn."""
    keep = target >= 0
    s, t = scores[keep].double(), target[keep].double()
    order = torch.argsort(s, descending=True, stable=True)
    s, t = s[order], t[order]
    tp = t.cumsum(0)
    fp = (1 - t).cumsum(0)
    last = torch.ones(len(s), dtype=torch.bool)  # the last item of each run of equal scores
    last[:-1] = s[1:] != s[:-1]
    tp, fp = tp[last], fp[last]
    return tp / (tp + fp), tp / t.sum()


def average_precision(scores: Tensor, target: Tensor) -> float | None:
    """Area under the (step-wise, not interpolated) precision-recall curve: ``sum_n (R_n - R_{n-1}) P_n``,
    scikit-learn's ``average_precision_score``. None when there is no positive."""
    if not bool((target == 1).any()):
        return None
    precision, recall = _pr_points(scores, target)
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * precision).sum())


def voc07_average_precision(scores: Tensor, target: Tensor) -> float | None:
    """The VOC 2007 devkit's 11-point interpolated AP: the mean over recall levels r in {0, 0.1, ..., 1} of
    the highest precision reached at any recall >= r (0 where none). None when there is no positive.

    Tied scores count as one threshold (as scikit-learn's precision-recall curve does); the 2007 devkit sorts them
    and steps through each image, so the two differ where scores tie."""
    if not bool((target == 1).any()):
        return None
    precision, recall = _pr_points(scores, target)
    total = 0.0
    for level in torch.linspace(0, 1, 11, dtype=torch.float64):
        reached = recall >= level - 1e-12
        total += float(precision[reached].max()) if bool(reached.any()) else 0.0
    return total / 11
