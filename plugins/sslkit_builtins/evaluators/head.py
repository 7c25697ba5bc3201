"""The pretext's own classifier (fixmatch's, SGAN's discriminator, the supervised baseline's head) scored on the
test split; it is also the run's classifier (``sslkit predict``, ``sslkit export``)."""

from __future__ import annotations

from sslkit import Classifier, Component, EvalContext, EvalResult, UsageError, fold_affine, hookimpl
from sslkit_builtins.evaluators.metrics import classification_report


class HeadEvaluator:
    def evaluate(self, ctx: EvalContext) -> EvalResult:
        pretext = ctx.pretext
        if pretext is None:
            raise UsageError(
                "evaluator 'head' needs the trained pretext's classifier, and this run kept no checkpoint.pt "
                "to rebuild it from: use --eval linear,knn here, or --eval head in `sslkit run`"
            )
        own = pretext.classifier_head()
        if own is None:
            raise UsageError(
                f"evaluator 'head' needs a pretext with its own classifier (fixmatch, sgan, supervised); "
                f"{type(pretext).__name__} has none: use --eval linear or knn"
            )
        head = fold_affine(own, ctx.encoder.feature_dim)
        model = Classifier(ctx.encoder, head.to(ctx.device), ctx.info)
        logits = model.logits(ctx.test.images)
        metrics, details = classification_report(logits, ctx.test.labels.cpu(), ctx.info.classes)
        return EvalResult(metrics, details=details, head=head)


@hookimpl
def sslkit_evaluators() -> list[Component]:
    return [
        Component(
            "head",
            HeadEvaluator,
            "test accuracy of the pretext's own classifier (fixmatch, sgan, supervised)",
        )
    ]
