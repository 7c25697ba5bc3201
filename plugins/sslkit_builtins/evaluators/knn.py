"""k-nearest-neighbour classification on frozen features (the protocol of Wu et al. 2018, used by DINO).

Features are L2-normalized, so the inner product is the cosine similarity; the labeled split is the bank, searched
exactly with a faiss ``IndexFlatIP`` (on the GPU when faiss has GPU support and the run is on CUDA), one batch of
test queries at a time. Each of the ``k`` nearest neighbours votes for its class with weight 1 (``uniform``) or
``exp(similarity / T)`` (``exp``); ties go to the lowest class index, as in scikit-learn. One search with the
largest ``k`` serves every ``k`` asked for."""

from __future__ import annotations

from typing import Any, Literal

import faiss
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from sslkit import Component, EvalContext, EvalResult, UsageError, hookimpl
from sslkit_builtins.evaluators.metrics import classification_report

DEFAULT_K = (20, 200)


def parse_k(value: Any) -> list[int] | None:
    """``"20,200"``, ``"[20, 200]"``, ``20`` or ``[20, 200]`` -> ``[20, 200]``; ``"auto"`` -> None."""
    if isinstance(value, str) and value.strip() == "auto":
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).strip("[] ").split(",")
    try:
        ks = [int(str(v).strip()) for v in items]
    except ValueError:
        raise UsageError(f"knn option k must be positive integers like 20 or 20,200, got {value!r}") from None
    if not ks or min(ks) < 1:
        raise UsageError(f"knn option k must be positive integers like 20 or 20,200, got {value!r}")
    return sorted(set(ks), key=ks.index)


def make_index(bank: Tensor, device: torch.device) -> faiss.Index:
    index = faiss.IndexFlatIP(bank.shape[1])
    if device.type == "cuda" and hasattr(faiss, "StandardGpuResources"):
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, device.index or 0, index)
        index.sslkit_resources = res  # keep the GPU memory alive as long as the index
    index.add(np.ascontiguousarray(bank.numpy(), dtype=np.float32))
    return index


def knn_votes(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    ks: list[int],
    num_classes: int,
    weighting: str = "exp",
    temperature: float = 0.07,
    batch_size: int = 4096,
    device: torch.device | None = None,
) -> dict[int, Tensor]:
    """Class votes ``(Q, num_classes)`` for each ``k`` in ``ks``; features are L2-normalized here."""
    bank = F.normalize(bank.float(), dim=1)
    queries = F.normalize(queries.float(), dim=1)
    index = make_index(bank, device or torch.device("cpu"))
    kmax = max(ks)
    votes: dict[int, list[Tensor]] = {k: [] for k in ks}
    for start in range(0, len(queries), batch_size):
        q = np.ascontiguousarray(queries[start : start + batch_size].numpy(), dtype=np.float32)
        sim, idx = index.search(q, kmax)
        sim, idx = torch.from_numpy(sim).double(), torch.from_numpy(idx)
        labels = bank_labels[idx]  # (B, kmax)
        # exp(sim / T) relative to each query's top neighbour (column 0): the same vote, no overflow at small T
        weight = torch.ones_like(sim) if weighting == "uniform" else ((sim - sim[:, :1]) / temperature).exp()
        for k in ks:
            v = torch.zeros(len(q), num_classes, dtype=torch.float64)
            votes[k].append(v.scatter_add_(1, labels[:, :k], weight[:, :k]))
    return {k: torch.cat(v) for k, v in votes.items()}


class KNN:
    frozen_features = True  # reads ctx.features only: sslkit also scores the baselines with it

    def __init__(
        self,
        k: int | str | list[int] = "auto",
        weighting: Literal["uniform", "exp"] = "exp",
        temperature: float = 0.07,
        batch_size: int = 4096,
    ) -> None:
        self.ks = parse_k(k)
        if weighting not in ("uniform", "exp"):
            raise UsageError(f"knn option weighting must be 'uniform' or 'exp', got {weighting!r}")
        if temperature <= 0:
            raise UsageError(f"knn option temperature must be positive, got {temperature}")
        if batch_size < 1:
            raise UsageError(f"knn option batch_size must be positive, got {batch_size}")
        self.weighting, self.temperature, self.batch_size = weighting, temperature, batch_size

    def choose_k(self, bank_size: int) -> tuple[list[int], str]:
        if self.ks is None:  # the defaults that fit the bank; a bank smaller than 20 votes with all of it
            ks = [k for k in DEFAULT_K if k <= bank_size] or [bank_size]
            skipped = [k for k in DEFAULT_K if k > bank_size]
            note = f"k={skipped} skipped: the bank holds only {bank_size} labeled images" if skipped else ""
            return ks, note
        too_big = [k for k in self.ks if k > bank_size]
        if too_big:
            raise UsageError(
                f"knn k={too_big[0]} is larger than the bank of {bank_size} labeled images; "
                f"use --eval-opt knn.k=N with N <= {bank_size}, or more --labels"
            )
        return self.ks, ""

    def evaluate(self, ctx: EvalContext) -> EvalResult:
        if ctx.info.multilabel:
            raise UsageError(
                "the knn evaluator is for single-label data; use --eval voc-map for multi-label data"
            )
        if len(ctx.labeled) == 0:
            raise UsageError(
                "the labeled split is empty; the knn bank needs --labels of at least one per class"
            )
        bank, queries = ctx.features("labeled"), ctx.features("test")
        ks, note = self.choose_k(len(bank))
        votes = knn_votes(
            bank,
            ctx.labeled.labels.cpu().long(),
            queries,
            ks,
            ctx.info.num_classes,
            self.weighting,
            self.temperature,
            self.batch_size,
            ctx.device,
        )
        target = ctx.test.labels.cpu().long()
        metrics, details = classification_report(votes[ks[0]], target, ctx.info.classes)
        for k in ks:
            metrics[f"accuracy_k{k}"] = float((votes[k].argmax(1) == target).double().mean())
        details.update(
            {"k": ks, "weighting": self.weighting, "temperature": self.temperature, "report_k": ks[0]}
        )
        if note:
            details["note"] = note
        return EvalResult(metrics, details=details)


@hookimpl
def sslkit_evaluators() -> list[Component]:
    return [
        Component(
            "knn",
            KNN,
            "k-NN vote on L2-normalized frozen features (faiss, exact cosine); k=20 and 200 by default",
        )
    ]
