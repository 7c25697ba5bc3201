"""Matplotlib figures for the HTML report, returned as ``data:image/png;base64,...`` URIs."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# Keys of a metrics.jsonl record that are bookkeeping, not curves.
BOOKKEEPING = ("epoch", "step", "lr", "seconds", "images_per_s")
PALETTE = [
    "#4c72b0",
    "#dd8452",
    "#55a868",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#8c8c8c",
    "#ccb974",
    "#64b5cd",
]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.prop_cycle": plt.cycler(color=PALETTE),
        }
    )
    return plt


def to_uri(fig: Any) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def is_accuracy(key: str) -> bool:
    return "acc" in key.lower()


def is_rate(key: str) -> bool:
    """A term that is a share in [0, 1] (an accuracy, FixMatch's mask rate), plotted apart from the losses."""
    return is_accuracy(key) or key.lower() == "mask" or key.lower().endswith("_rate")


def curve_keys(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(loss-like keys, rate-like keys) present in the records, in first-seen order."""
    seen: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in BOOKKEEPING and isinstance(v, (int, float)) and not isinstance(v, bool):
                seen.setdefault(k)
    keys = list(seen)
    return [k for k in keys if not is_rate(k)], [k for k in keys if is_rate(k)]


def _series(records: list[dict[str, Any]], key: str, x: str = "epoch") -> tuple[list[float], list[float]]:
    pts = [(r[x], r[key]) for r in records if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def _smooth(y: list[float]) -> list[float]:
    """A trailing mean over about 1/50 of the points: per-step losses are noisy."""
    window = max(1, len(y) // 50)
    out, total = [], 0.0
    for i, v in enumerate(y):
        total += v - (y[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def _plot(ax: Any, x: list[float], y: list[float], label: str, color: str | None = None) -> None:
    ax.plot(
        x, y, marker="o" if len(x) < 30 else None, markersize=3.5, linewidth=1.6, label=label, color=color
    )


def run_curves(records: list[dict[str, Any]], steps: list[dict[str, Any]] | None = None) -> str | None:
    """One run's pretext training: loss terms, accuracy terms and the learning rate; per step (smoothed) from
    ``steps.csv`` when the run logged one, else per epoch."""
    rows, x = (steps, "step") if steps else (records, "epoch")
    if not rows:
        return None
    losses, accs = curve_keys(rows)
    panels = [("loss terms", losses), ("accuracies and rates", accs), ("learning rate", ["lr"])]
    panels = [(title, keys) for title, keys in panels if keys and any(_series(rows, k, x)[0] for k in keys)]
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 2.8), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for key in keys:
            xs, ys = _series(rows, key, x)
            _plot(ax, xs, ys if key == "lr" or x == "epoch" else _smooth(ys), label=key)
        ax.set_title(title)
        ax.set_xlabel(x)
        if len(keys) > 1:
            ax.legend(frameon=False, fontsize=8)
        if keys is accs:
            ax.set_ylim(0, 1.02)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return to_uri(fig)


def overlaid_curves(runs: Sequence[tuple[str, list[dict[str, Any]]]]) -> str | None:
    """Several runs on shared axes: the total loss and, where logged, the pretext's accuracy."""
    runs = [(name, recs) for name, recs in runs if recs]
    if not runs:
        return None
    acc_keys = {name: [k for k in curve_keys(recs)[1] if is_accuracy(k)] for name, recs in runs}
    has_acc = any(acc_keys.values())
    plt = _plt()
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(9 if has_acc else 5.5, 3.2), squeeze=False)
    for i, (name, recs) in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        _plot(axes[0][0], *_series(recs, "loss"), label=name, color=color)
        if has_acc and acc_keys[name]:
            _plot(axes[0][1], *_series(recs, acc_keys[name][0]), label=name, color=color)
    axes[0][0].set_title("pretext loss")
    if has_acc:
        axes[0][1].set_title("pretext accuracy")
        axes[0][1].set_ylim(0, 1.02)
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.08 + 0.05 * ((len(labels) - 1) // 3), 1, 1))
    return to_uri(fig)


def confusion(cm: list[list[int]], classes: list[str], title: str) -> str:
    """Counts, coloured by the share of each true class (row)."""
    m = np.asarray(cm, dtype=float)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(classes)
    size = max(3.6, 0.42 * k + 1.6)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(
                        j,
                        i,
                        f"{int(m[i, j])}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share[i, j] > 0.6 else "#222",
                    )
        ax.set_xticks(range(k), classes, rotation=45 if max(map(len, classes)) > 2 else 0, ha="right")
        ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return to_uri(fig)


def tsne_maps(
    maps: dict[str, list], labels: list[int], classes: list[str], hits: dict[str, float], k: int
) -> str:
    """Side-by-side t-SNE scatters (encoder features, raw pixels) coloured by class."""
    titles = {"features": "encoder features", "pixels": "raw pixels"}
    y = np.asarray(labels)
    plt = _plt()
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, axes = plt.subplots(1, len(maps), figsize=(5.2 * len(maps), 4.9), squeeze=False)
    # class -> one of its artists, for the legend (matplotlib would hide labels starting with "_")
    shown: dict[int, Any] = {}
    for ax, (name, pts) in zip(axes[0], maps.items()):
        p = np.asarray(pts)
        for c in range(len(classes)):
            sel = y == c
            if sel.any():
                shown.setdefault(
                    c, ax.scatter(p[sel, 0], p[sel, 1], s=5, color=cmap(c % cmap.N), linewidths=0)
                )
        ax.set_title(f"{titles.get(name, name)}: neighbourhood hit {hits[name]:.3f} (k={k})")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
    handles, names = [shown[c] for c in sorted(shown)], [classes[c] for c in sorted(shown)]
    fig.legend(
        handles, names, loc="lower center", ncol=min(10, len(names)), frameon=False, markerscale=3, fontsize=8
    )
    fig.tight_layout(rect=(0, 0.07 if len(names) <= 10 else 0.12, 1, 1))
    return to_uri(fig)
