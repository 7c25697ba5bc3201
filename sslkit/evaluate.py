"""Running evaluators: at the end of ``sslkit run``, and again on a finished run with ``sslkit eval RUN_DIR``.

For ``eval`` the dataset and the label budget are rebuilt from ``config.json`` exactly as ``sslkit run`` built them
(the budget's digest must match the recorded one), the encoder is rebuilt from the registry and loaded from its
saved weights (the whole pretext from the last checkpoint, for evaluators of its own classifier), and the new
metrics are merged into ``results.json`` atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from sslkit import build, rundir
from sslkit.classifier import Classifier, fold_affine
from sslkit.config import RunConfig, names_list
from sslkit.errors import UsageError
from sslkit.features import FeatureCache, extract_features
from sslkit.interfaces import EvalContext, Pretext
from sslkit.probe import fit_probe
from sslkit.registry import Registry, load_registry
from sslkit.report.html import write_run_report
from sslkit.util import log, status


def evaluate(
    registry: Registry,
    cfg: RunConfig,
    pretext: Pretext | None,
    encoder: torch.nn.Module,
    data: build.Data,
    device: torch.device,
    run_dir: Path | None,
    names: list[str] | None = None,
    label: str = "",
    heads: dict[str, torch.nn.Module] | None = None,
) -> dict[str, dict[str, float]]:
    """Run the evaluators ``names`` (default ``cfg.eval``); with a ``run_dir`` their details go to files there;
    the linear heads they trained go into ``heads`` (by evaluator name) when given."""
    labeled, test = data.labeled, data.bundle.test
    if len(labeled) == 0:
        raise UsageError("the labeled split is empty; evaluators need --labels of at least one per class")
    features = FeatureCache(encoder, {"labeled": labeled, "test": test}, data.info, device)
    amp = build.amp_dtype(cfg, device)
    ctx = EvalContext(encoder, pretext, data.info, labeled, test, features, device, run_dir, cfg.seed, amp)
    results: dict[str, dict[str, float]] = {}
    for name in cfg.eval if names is None else names:
        evaluator = registry.build("evaluator", name, options=cfg.eval_options.get(name, {}))
        torch.manual_seed(cfg.seed)
        t0 = time.perf_counter()
        with status(f"evaluating {name}{label}"):
            result = evaluator.evaluate(ctx)
        results[name] = result.metrics
        if heads is not None and result.head is not None:
            heads[name] = result.head
        headline = next(iter(result.metrics.items()), None)
        shown = f"{headline[0]} {headline[1]:.4f}, " if headline and isinstance(headline[1], float) else ""
        log(f"{name}{label}: {shown}{time.perf_counter() - t0:.1f} s")
        if run_dir is not None and (result.details or result.artifacts):
            artifacts = dict(result.artifacts)
            if "confusion_matrix" in result.details and "classes" in result.details:
                artifacts["confusion_matrix"] = rundir.write_confusion(
                    run_dir, name, result.details["classes"], result.details["confusion_matrix"]
                )
            rundir.write_json(rundir.eval_details(run_dir, name), {"artifacts": artifacts, **result.details})
    return results


def run_classifier(
    pretext: Pretext, data: build.Data, device: torch.device, seed: int, heads: dict[str, torch.nn.Module]
) -> tuple[Classifier, dict[str, Any]]:
    """The run's classifier and what to record of it: the method's own classifier where it has one, else the
    linear probe (the ``linear`` evaluator's, or fitted here). Without a test split, a probe fitted here also
    gives an honest estimate, its cross-validated accuracy over the labels, unless the method trained on them."""
    encoder, info = pretext.encoder, data.info
    own = pretext.classifier_head()
    record: dict[str, Any] = {"source": "the method's own classifier" if own is not None else "linear probe"}
    if own is not None:
        head = heads.get("head") or fold_affine(own, encoder.feature_dim)
    elif "linear" in heads:
        head = heads["linear"]
    else:
        features = extract_features(encoder, data.labeled.images, info, device)
        probe = fit_probe(features, data.labeled.labels.cpu(), info.num_classes, seed=seed)
        head = probe.head()
        if probe.cv_scores and not pretext.uses_labels:
            record["estimate"] = {
                "cv_accuracy": max(probe.cv_scores.values()),
                "what": f"the linear probe's {len(data.labeled)}-label cross-validated accuracy, not a test score",
            }
    return Classifier(encoder, head.to(device), info), record


class RawPixels(torch.nn.Module):
    """The raw-pixels baseline as an encoder: the normalized image, flattened."""

    def __init__(self, in_chans: int, image_size: int) -> None:
        super().__init__()
        self.feature_dim = in_chans * image_size**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def baselines(
    registry: Registry, cfg: RunConfig, data: build.Data, device: torch.device
) -> dict[str, dict[str, dict[str, float]]]:
    """The run's frozen-feature evaluators (those with ``frozen_features = True``) on the same label draw, on a
    randomly initialized encoder of the same architecture (the run's own starting point) and on raw pixels:
    what training bought."""
    names = [
        n
        for n in cfg.eval
        if getattr(registry.get("evaluator", n).component.factory, "frozen_features", False)
    ]
    if not names:
        return {}
    random_init = build.build_encoder(registry, cfg, data.info, for_weights=True).to(device)
    pixels = RawPixels(data.info.in_chans, data.info.image_size)
    return {
        "random_init": evaluate(
            registry, cfg, None, random_init, data, device, None, names, " (random init)"
        ),
        "pixels": evaluate(registry, cfg, None, pixels, data, device, None, names, " (raw pixels)"),
    }


def evaluate_saved_run(
    run_dir: Path, evals: list[str] | str | None, eval_options: dict, device: str | None
) -> dict[str, dict[str, float]]:
    """Run ``evals`` (default: the run's own) on the run's encoder; returns their metrics."""
    registry = load_registry()
    cfg, record = build.saved_config(run_dir, registry)
    names = list(names_list(evals) or cfg.eval)
    if not names:
        raise UsageError("no evaluator given; pass --eval NAME[,NAME...]")
    options = {n: {**cfg.eval_options.get(n, {}), **eval_options.get(n, {})} for n in names}
    unused = set(eval_options) - set(names)
    if unused:
        raise UsageError(f"options given for evaluator(s) {', '.join(sorted(unused))} that are not in --eval")
    cfg.update(
        {"eval": names, "eval_options": options, **({"device": device} if device else {})}, "command line"
    )
    cfg = build.resolve(registry, cfg)
    device_ = build.resolve_device(cfg.device)
    data = build.load_data(registry, cfg, record)
    encoder = build.trained_encoder(registry, cfg, data.info, run_dir).to(device_)
    pretext = build.trained_pretext(registry, cfg, data.info, run_dir)
    if pretext is not None:
        pretext.to(device_)
    with rundir.locked(run_dir):
        results = evaluate(registry, cfg, pretext, encoder, data, device_, run_dir)
        path = run_dir / rundir.RESULTS
        summary: dict[str, Any] = rundir.read_json(path) or {}
        summary.setdefault("results", {}).update(results)
        summary.setdefault("labeled", len(data.labeled))
        rundir.write_json(path, summary)
        write_run_report(run_dir, cfg.tsne_points)
    return results
