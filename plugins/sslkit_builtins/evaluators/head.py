"""The pretext's own classifier (SGAN's discriminator, the supervised baseline's head) scored on the test split."""

from __future__ import annotations

import torch

from sslkit import Component, EvalContext, EvalResult, Pretext, UsageError, hookimpl
from sslkit_builtins.evaluators.metrics import classification_report


class HeadEvaluator:
    def __init__(self, batch_size: int = 1024) -> None:
        if batch_size < 1:
            raise UsageError(f"head option batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size

    @torch.inference_mode()
    def evaluate(self, ctx: EvalContext) -> EvalResult:
        pretext = ctx.pretext
        if pretext is None:
            raise UsageError(
                "evaluator 'head' needs the trained pretext's classifier, and this run kept no checkpoint.pt "
                "to rebuild it from: use --eval linear,knn here, or --eval head in `sslkit run`"
            )
        if type(pretext).predict is Pretext.predict:
            raise UsageError(
                f"evaluator 'head' needs a pretext with its own classifier (sgan, supervised); "
                f"{type(pretext).__name__} has none: use --eval linear or knn"
            )
        was = pretext.training
        pretext.eval()
        out = []
        for start in range(0, len(ctx.test), self.batch_size):
            x = ctx.test.images[start : start + self.batch_size].to(ctx.device).float().div_(255)
            out.append(pretext.predict(ctx.info.normalize(x)).float().cpu())
        pretext.train(was)
        metrics, details = classification_report(torch.cat(out), ctx.test.labels.cpu(), ctx.info.classes)
        return EvalResult(metrics, details=details)


@hookimpl
def sslkit_evaluators() -> list[Component]:
    return [
        Component(
            "head",
            HeadEvaluator,
            "test accuracy of the pretext's own classifier (sgan, supervised)",
        )
    ]
