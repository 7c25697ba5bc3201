"""``sslkit eval RUN_DIR``: evaluate a finished run's saved encoder again, with any evaluators.

The dataset and the label budget are rebuilt from ``config.json`` exactly as ``sslkit run`` built them (the
budget's digest must match the recorded one), the encoder is rebuilt from the registry and loaded from
``encoder.safetensors``, and the new metrics are merged into ``results.json`` atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sslkit.config import RunConfig
from sslkit.data import split_budget
from sslkit.engine.checkpoint import atomic_write_text
from sslkit.errors import UsageError
from sslkit.registry import load_registry
from sslkit.run import (
    _write_report,
    acquire_lock,
    check_names,
    evaluate,
    load_data,
    offline_encoder_options,
    release_lock,
    resolve_device,
)
from sslkit.rundir import load_encoder_weights, read_run_config


def load_encoder(registry: Any, cfg: RunConfig, info: Any, run_dir: Path) -> torch.nn.Module:
    options = offline_encoder_options(registry, cfg)  # the saved weights replace pretrained ones
    torch.manual_seed(cfg.seed)
    encoder = registry.build("encoder", cfg.encoder, info.in_chans, info.image_size, options=options)
    load_encoder_weights(encoder, run_dir, f"encoder {cfg.encoder!r} as configured; was the plugin changed?")
    return encoder


def evaluate_saved_run(
    run_dir: Path, evals: list[str] | str | None, eval_options: dict, device: str | None
) -> dict[str, dict[str, float]]:
    """Run ``evals`` (default: the run's own) on the run's encoder; returns their metrics."""
    saved = read_run_config(run_dir)
    cfg = RunConfig.from_dict(saved["config"], source=str(run_dir / "config.json"))
    if isinstance(evals, str):
        evals = [e.strip() for e in evals.split(",") if e.strip()]
    names = list(evals or cfg.eval)
    if not names:
        raise UsageError("no evaluator given; pass --eval NAME[,NAME...]")
    options = {n: {**cfg.eval_options.get(n, {}), **eval_options.get(n, {})} for n in names}
    unused = set(eval_options) - set(names)
    if unused:
        raise UsageError(f"options given for evaluator(s) {', '.join(sorted(unused))} that are not in --eval")
    cfg.update({"eval": names, "eval_options": options}, source="command line")
    if device:
        cfg.update({"device": device}, source="command line")

    registry = load_registry()
    check_names(registry, cfg)
    device_ = resolve_device(cfg.device)
    bundle = load_data(registry, cfg)
    budget = split_budget(bundle.train.labels, cfg.labels, cfg.seed, cfg.labels_per_class)
    recorded = saved.get("data", {}).get("labels_sha256")
    if recorded and recorded != budget.digest:
        raise UsageError(
            f"the label budget rebuilt from {run_dir / 'config.json'} differs from the run's (the dataset "
            "changed since); evaluate with the data the run was trained on"
        )
    labeled = bundle.train.subset(budget.labeled)
    encoder = load_encoder(registry, cfg, bundle.info, run_dir).to(device_)

    acquire_lock(run_dir)
    try:
        results = evaluate(registry, cfg, None, encoder, bundle.info, labeled, bundle.test, device_, run_dir)
        path = run_dir / "results.json"
        summary: dict[str, Any] = {}
        if path.exists():
            try:
                summary = json.loads(path.read_text())
            except ValueError:
                summary = {}
        summary.setdefault("results", {}).update(results)
        summary.setdefault("labeled", len(labeled))
        atomic_write_text(path, json.dumps(summary, indent=2))
        _write_report(run_dir)
    finally:
        release_lock(run_dir)
    return results
