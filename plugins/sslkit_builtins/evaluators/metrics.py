"""Classification metrics on tensors: top-k accuracy, per-class accuracy, confusion matrix."""

from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(target: Tensor, pred: Tensor, num_classes: int) -> Tensor:
    """Rows are true classes, columns predicted classes (scikit-learn's convention)."""
    flat = target.long() * num_classes + pred.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def topk_accuracy(logits: Tensor, target: Tensor, k: int) -> float:
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == target.view(-1, 1)).any(1).float().mean())


def classification_report(
    logits: Tensor, target: Tensor, classes: list[str]
) -> tuple[dict[str, float], dict]:
    """Metrics (accuracy, top-5 when there are more than 5 classes, mean per-class accuracy) and details
    (per-class accuracy, confusion matrix)."""
    k = len(classes)
    pred = logits.argmax(1)
    cm = confusion_matrix(target, pred, k)
    support = cm.sum(1).clamp_min(1)
    per_class = (cm.diag().float() / support.float()).tolist()
    metrics = {"accuracy": float((pred == target).float().mean())}
    if k > 5:
        metrics["top5"] = topk_accuracy(logits, target, 5)
    metrics["mean_class_accuracy"] = float(sum(per_class) / k)
    details = {
        "per_class_accuracy": dict(zip(classes, per_class)),
        "confusion_matrix": cm.tolist(),
        "classes": classes,
    }
    return metrics, details
