"""``sslkit suggest RUN``: the images to label next, as a CSV to fill in and a contact sheet to label them by eye.

The CSV lists the images already labeled (with their labels) and then the picks (label empty, the run's guess
beside it when the run has a classifier), so that, filled in, it goes straight back in as
``--data-opt labels=FILE.csv`` and the next run learns from the old labels and the new ones."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, NamedTuple

import torch

from sslkit import build, rundir
from sslkit.errors import UsageError
from sslkit.labeling import choose_in_view, contact_sheet
from sslkit.registry import load_registry
from sslkit.util import atomic_write_text, log


class Suggestion(NamedTuple):
    csv: Path
    sheet: Path
    strategy: str
    data: str
    # the data options of the run that takes the filled CSV back (every one the run was given, as it found them,
    # labels the CSV); None where the run's data is not a folder, which cannot take the sheet back
    next_options: dict[str, Any] | None


def suggest(
    run_dir: Path, n: int, out: Path, strategy: str = "auto", seed: int | None = None, device: str = "cpu"
) -> Suggestion:
    """``sslkit suggest``: write the CSV (already labeled images with their labels, then the ``n`` picks with an
    empty label and the model's guess where the run has a classifier) and its contact sheet. ``out`` may not be
    the CSV the run was trained on (a run must stay readable), nor a sheet holding labels it was not trained on."""
    registry = load_registry()
    cfg, record = build.saved_config(run_dir, registry)
    trained_on = cfg.data_options.get("labels")
    if trained_on and out.resolve() == Path(trained_on).resolve():
        raise UsageError(
            f"{run_dir} was trained on the labels in {out}: write the next round to a new file (e.g. --out "
            f"{out.with_stem(out.stem + '-next')}), so that this run can still be read again"
        )
    data = build.load_data(registry, cfg, record)
    if data.info.multilabel:
        raise UsageError(
            f"{cfg.data} is multi-label and the sheet holds one label an image: sslkit suggest needs a run on "
            "single-label data"
        )
    classes = data.info.classes
    # a folder's labels are all kept, the ones the run left out (--labels below their count) too: they sit in
    # its pool, still labeled, never picks
    every_label = data.bundle.labels_given and data.bundle.train_files
    names, ys = (
        (data.bundle.train_files, data.bundle.train) if every_label else (data.labeled_names, data.labeled)
    )
    known = {name: classes[int(y)] for name, y in zip(names, ys.labels.tolist())}
    refuse_to_write_over_new_labels(out, known)
    images = torch.cat([data.labeled.images, data.pool])
    log(f"reading {len(images):,} images with the run's encoder")
    features, probabilities = build.run_view(registry, run_dir, images, build.resolve_device(device))
    offset = len(data.labeled)
    held = [offset + i for i, name in enumerate(data.pool_names) if name in known]
    labeled = torch.cat([torch.arange(offset), torch.tensor(held, dtype=torch.int64)])
    seed = cfg.seed if seed is None else seed
    name, picks = choose_in_view(
        registry, strategy, images, features, probabilities, n, labeled, seed, len(classes) or None
    )
    picks_in_pool = picks - offset  # the picks never include a labeled image
    rows = []
    for p in picks.tolist():
        row = {"path": data.pool_names[p - offset], "label": ""}
        if probabilities is not None:
            best = probabilities[p].argmax()
            row.update(guess=classes[int(best)], confidence=f"{float(probabilities[p, best]):.2f}")
        rows.append(row)
    columns = ["path", "label", "guess", "confidence"] if probabilities is not None else ["path", "label"]
    labels_so_far = [{"path": path, "label": label} for path, label in known.items()]
    lines = [",".join(columns)] + [
        rundir.csv_row([r.get(c, "") for c in columns]) for r in labels_so_far + rows
    ]
    atomic_write_text(out, "\n".join(lines) + "\n")
    sheet = out.with_suffix(".html")
    title = f"{len(rows)} images to label next ({name}, {run_dir.name})"
    atomic_write_text(sheet, contact_sheet(rows, data.pool[picks_in_pool], title, classes))
    given = record["config"].get("data_options", {})
    next_options = (
        {**{key: cfg.data_options[key] for key in given}, "labels": out} if "path" in given else None
    )
    return Suggestion(out, sheet, name, cfg.data, next_options)


def refuse_to_write_over_new_labels(out: Path, known: dict[str, str]) -> None:
    """A one-line error where ``out`` already holds labels the run was not trained on (a sheet filled in, not yet
    trained on): writing the new picks over it would lose them."""
    if not out.is_file():
        return
    with out.open(newline="", encoding="utf-8-sig", errors="replace") as file:
        filled = [
            ((row.get("path") or "").strip(), (row.get("label") or "").strip())
            for row in csv.DictReader(file)
        ]
    new = [path for path, label in filled if path and label and known.get(path) != label]
    if new:
        raise UsageError(
            f"{out} holds {len(new)} label(s) this run was not trained on (e.g. {new[0]}): train on them first "
            f"(--data-opt labels={out}), or write the new picks elsewhere (--out)"
        )
