"""The linear probe: multinomial logistic regression on frozen, standardized features, shared by the ``linear``
evaluator, fine-tuning's start and a run's classifier when its method has none of its own.

The objective is scikit-learn's: ``C * sum(cross-entropy) + ||W||^2 / 2`` (bias not penalized), solved with
full-batch L-BFGS. ``C`` is picked by stratified k-fold cross-validation on the labeled split alone."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sslkit.classifier import linear_head
from sslkit.util import log, one_thread

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)  # the L2 strengths cross-validation chooses from


def fit_logistic(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    c: float,
    max_iter: int = 500,
    start: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Weights ``(D, K)`` and bias ``(K,)`` minimizing ``C * sum CE + ||W||^2 / 2``, in float64. The objective is
    strictly convex, so ``start`` (another C's solution: a warm start along the grid) changes only the time.

    With more features than samples (most few-label probes) the minimizer lies in the span of the rows (the
    penalty only grows off it), so the same problem is solved exactly in an orthonormal basis of that span, in at
    most N coordinates instead of D: the dcgan discriminator's 4,096 features of 80 digits, 31 fits of the C grid,
    went from 68 s to 13 s (one thread; tests/test_foundation.py checks the equality with scikit-learn)."""
    x, y = x.double(), y.long()
    if x.shape[1] > len(x):
        _, s, vh = torch.linalg.svd(x, full_matrices=False)
        basis = vh[s > s.max() * 1e-10].T  # (D, r), orthonormal columns spanning the rows
        reduced = None if start is None else (basis.T @ start[0].double(), start[1])
        v, b = _fit_logistic(x @ basis, y, num_classes, c, max_iter, reduced)
        return basis @ v, b
    return _fit_logistic(x, y, num_classes, c, max_iter, start)


def _fit_logistic(
    x: Tensor, y: Tensor, num_classes: int, c: float, max_iter: int, start: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor]:
    w0, b0 = start or (torch.zeros(x.shape[1], num_classes), torch.zeros(num_classes))
    w = w0.detach().double().clone().requires_grad_(True)
    b = b0.detach().double().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    scale = 1.0 / len(x)  # the objective divided by C * n: same minimizer, better conditioned

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y, reduction="sum") * scale + (w * w).sum() * scale / (2 * c)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def standardization(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature mean and std of the labeled features. A feature (nearly) constant there gets std = inf, i.e.
    weight 0: dividing by its ~0 std would turn the slightest variation on test images into huge inputs."""
    if len(x) < 2:
        return x.mean(0), torch.ones(x.shape[1], dtype=x.dtype)
    std = x.std(0)
    return x.mean(0), torch.where(std > 1e-3 * std.mean(), std, torch.inf)


def stratified_folds(y: Tensor, folds: int, seed: int) -> list[Tensor]:
    """Fold id per sample: each class's samples dealt round-robin after a seeded shuffle."""
    gen = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(y), dtype=torch.long)
    for c in torch.unique(y):
        members = (y == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        fold[members] = torch.arange(len(members)) % folds
    return [(fold == f).nonzero().flatten() for f in range(folds)]


def choose_c(
    x: Tensor, y: Tensor, k: int, grid: list[float], folds: int, seed: int, max_iter: int
) -> tuple[float, dict]:
    """``C`` by stratified cross-validation on raw features ``x`` (standardized inside each fold); ties go to the
    stronger regularization."""
    counts = torch.bincount(y, minlength=k)
    folds = int(min(folds, counts[counts > 0].min()))
    if len(grid) == 1:
        return float(grid[0]), {}
    if folds < 2:
        c = float(grid[len(grid) // 2])
        log(
            f"[yellow]linear probe[/]: a class has a single label, so cross-validation could not run; C = {c}"
        )
        return c, {}
    # each fold standardizes with its own training part's statistics: the held-out part never leaks into them
    splits = []
    for held in stratified_folds(y, folds, seed):
        train = torch.ones(len(y), dtype=torch.bool)
        train[held] = False
        mean, std = standardization(x[train])
        splits.append(((x[train] - mean) / std, y[train], (x[held] - mean) / std, y[held]))
    correct = dict.fromkeys(grid, 0)
    for train_x, train_y, held_x, held_y in splits:
        solution = None
        for c in sorted(grid):  # each C starts from the previous (stronger-regularized) one's solution
            solution = fit_logistic(train_x, train_y, k, c, max_iter, solution)
            w, b = solution
            correct[c] += int(((held_x.double() @ w + b).argmax(1) == held_y).sum())
    scores = {c: correct[c] / len(y) for c in grid}
    best = max(grid, key=lambda c: (scores[c], -c))  # ties go to the stronger regularization
    return float(best), {str(c): s for c, s in scores.items()}


class Probe(NamedTuple):
    """A fitted probe: ``logits(x) = ((x - mean) / std) @ w + b``, its ``c`` and the cross-validation scores."""

    c: float
    cv_scores: dict
    mean: Tensor
    std: Tensor
    w: Tensor
    b: Tensor

    def logits(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / self.std).double() @ self.w + self.b

    def head(self) -> nn.Linear:
        """The probe as one ``nn.Linear`` on raw features (the standardization folded in)."""
        return linear_head(self.w, self.b, self.mean, self.std)


def fit_probe(
    x: Tensor,
    y: Tensor,
    k: int,
    grid: tuple[float, ...] | list[float] = C_GRID,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = 500,
) -> Probe:
    """The linear probe on raw features ``x``: ``C`` by :func:`choose_c`, then the logistic regression on ``x``
    standardized by its own statistics. Small problems (most few-label ones) run on one thread."""
    with one_thread() if x.numel() < 2_000_000 else contextlib.nullcontext():
        c, cv_scores = choose_c(x, y, k, grid, folds, seed, max_iter)
        mean, std = standardization(x)
        w, b = fit_logistic((x - mean) / std, y, k, c, max_iter)
    return Probe(c, cv_scores, mean, std, w, b)
