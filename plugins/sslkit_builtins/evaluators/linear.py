"""Linear probe: multinomial logistic regression on frozen, standardized features (:mod:`sslkit.probe`), ``C`` by
cross-validation on the labeled split alone; the test split is touched once, for the final score."""

from __future__ import annotations

from sslkit import C_GRID, Component, EvalContext, EvalResult, UsageError, fit_probe, hookimpl
from sslkit_builtins.evaluators.metrics import classification_report


class LinearProbe:
    frozen_features = True  # reads ctx.features only: sslkit also scores the baselines with it

    def __init__(self, c_grid: list = C_GRID, folds: int = 5, max_iter: int = 500):
        try:
            self.c_grid = [float(c) for c in c_grid]
        except (TypeError, ValueError):
            raise UsageError(f"linear option c_grid must be a list of numbers, got {c_grid!r}") from None
        if not self.c_grid or min(self.c_grid) <= 0:
            raise UsageError(f"linear option c_grid must hold positive numbers, got {c_grid!r}")
        if folds < 2:
            raise UsageError(f"linear option folds must be at least 2, got {folds}")
        self.folds, self.max_iter = folds, max_iter

    def evaluate(self, ctx: EvalContext) -> EvalResult:
        if ctx.info.multilabel:
            raise UsageError(
                "the linear evaluator is for single-label data; use --eval voc-map for multi-label data"
            )
        train_x, test_x = ctx.features("labeled"), ctx.features("test")
        train_y, test_y = ctx.labeled.labels.cpu(), ctx.test.labels.cpu()
        k = ctx.info.num_classes
        probe = fit_probe(train_x, train_y, k, self.c_grid, self.folds, ctx.seed, self.max_iter)
        metrics, details = classification_report(probe.logits(test_x), test_y, ctx.info.classes)
        metrics["train_accuracy"] = float((probe.logits(train_x).argmax(1) == train_y).float().mean())
        details.update({"C": probe.c, "cv_accuracy": probe.cv_scores})
        return EvalResult(metrics, details=details, head=probe.head())


@hookimpl
def sslkit_evaluators() -> list[Component]:
    return [
        Component(
            "linear",
            LinearProbe,
            "logistic regression on frozen standardized features; L2 strength by cross-validation on the labels",
        )
    ]
