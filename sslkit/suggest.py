"""``sslkit suggest RUN``: the images to label next, as a CSV to fill in and a contact sheet to label them by eye.

The CSV lists the images already labeled (with their labels) and then the picks (label empty, the run's guess
beside it when the run has a classifier), so that, filled in, it goes straight back in as
``--data-opt labels=FILE.csv`` and the next run learns from the old labels and the new ones."""

from __future__ import annotations

from pathlib import Path

import torch

from sslkit import build, rundir
from sslkit.labeling import choose_in_view, contact_sheet
from sslkit.registry import load_registry
from sslkit.util import atomic_write_text, log


def suggest(
    run_dir: Path, n: int, out: Path, strategy: str = "auto", seed: int | None = None, device: str = "cpu"
) -> tuple[Path, Path, str]:
    """``sslkit suggest``: write the CSV (already labeled images with their labels, then the ``n`` picks with an
    empty label and the model's guess where the run has a classifier) and its contact sheet; returns their paths
    and the strategy used."""
    registry = load_registry()
    cfg, record = build.saved_config(run_dir, registry)
    data = build.load_data(registry, cfg, record)
    images = torch.cat([data.labeled.images, data.pool])
    log(f"reading {len(images):,} images with the run's encoder")
    features, probabilities = build.run_view(registry, run_dir, images, build.resolve_device(device))
    labeled = torch.arange(len(data.labeled))
    seed = cfg.seed if seed is None else seed
    classes = data.info.classes
    name, picks = choose_in_view(
        registry, strategy, images, features, probabilities, n, labeled, seed, len(classes) or None
    )
    picks_in_pool = picks - len(data.labeled)  # the picks never include a labeled image
    known = [
        {"path": path, "label": classes[int(y)]}
        for path, y in zip(data.labeled_names, data.labeled.labels.tolist())
    ]
    rows = []
    for p in picks.tolist():
        row = {"path": data.pool_names[p - len(data.labeled)], "label": ""}
        if probabilities is not None:
            best = probabilities[p].argmax()
            row.update(guess=classes[int(best)], confidence=f"{float(probabilities[p, best]):.2f}")
        rows.append(row)
    columns = ["path", "label", "guess", "confidence"] if probabilities is not None else ["path", "label"]
    lines = [",".join(columns)] + [rundir.csv_row([r.get(c, "") for c in columns]) for r in known + rows]
    atomic_write_text(out, "\n".join(lines) + "\n")
    sheet = out.with_suffix(".html")
    title = f"{len(rows)} images to label next ({name}, {run_dir.name})"
    atomic_write_text(sheet, contact_sheet(rows, data.pool[picks_in_pool], title, classes))
    return out, sheet, name
