"""t-SNE maps of a run's test features and of the raw pixels of the same images, scored by neighbourhood hit.

The neighbourhood hit of a 2-D map is the share of each point's ``k`` nearest neighbours (itself excluded) that
carry its label, averaged over the points: 1.0 means every class forms clean islands. The result is cached in
``RUN_DIR/tsne.json`` so a report can be rebuilt without redoing the work.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from sslkit import build, rundir
from sslkit.config import RunConfig
from sslkit.features import extract_features
from sslkit.interfaces import DatasetBundle
from sslkit.registry import load_registry
from sslkit.util import atomic_write_text


def neighbourhood_hit(points: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean over points of the share of their ``k`` nearest neighbours (Euclidean, itself excluded) with
    the same label."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(points) - 1)
    if k < 1:
        raise ValueError("neighbourhood hit needs at least two points")
    # kneighbors() without points leaves each point out of its own list, even where others sit on the same spot
    _, neighbours = NearestNeighbors(n_neighbors=k).fit(points).kneighbors()
    return float((labels[neighbours] == labels[:, None]).mean())


def embed(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE map of ``x`` (N, D): PCA to 50 dimensions first, then Barnes-Hut t-SNE with 500 iterations
    (half of scikit-learn's default: on Fashion-MNIST the neighbourhood hit is the same to 1e-3, in half the time)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = x.astype(np.float32).reshape(len(x), -1)
    x = x - x.mean(0)
    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, (len(x) - 1) / 3))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        max_iter=500,
        random_state=seed,
    )
    return tsne.fit_transform(x).astype(np.float32)


def subsample(labels: np.ndarray, points: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``points`` test images drawn at random (all of them if there are fewer)."""
    rng = np.random.default_rng(seed)
    if points >= len(labels):
        return np.arange(len(labels))
    return np.sort(rng.choice(len(labels), size=points, replace=False))


class Held(NamedTuple):
    """What a run holds in memory when its report is written: its config, dataset bundle and trained encoder."""

    cfg: RunConfig
    bundle: DatasetBundle
    encoder: torch.nn.Module


def load_run(run_dir: Path) -> Held:
    """Rebuild a finished run's config, dataset bundle and trained encoder from disk (never a download)."""
    registry = load_registry()
    cfg, record = build.saved_config(run_dir, registry)
    cfg = dataclasses.replace(cfg, download=False)
    data = build.load_data(registry, cfg, record)
    return Held(cfg, data.bundle, build.trained_encoder(registry, cfg, data.info, run_dir))


def compute(run_dir: Path, points: int, k: int = 10, held: Held | None = None) -> dict[str, Any]:
    """t-SNE of encoder features and of raw pixels for ``points`` test images; cached in ``tsne.json``. ``held``:
    the run's own config, data and encoder (at the end of ``sslkit run``), else they are rebuilt from disk."""
    weights = run_dir / rundir.ENCODER
    stamp = weights.stat().st_mtime_ns
    cache = run_dir / rundir.TSNE
    if cache.exists():
        try:
            cached = json.loads(cache.read_text())
            if (
                cached.get("encoder_mtime_ns") == stamp
                and cached.get("points") == points
                and cached["k"] == k
            ):
                return cached
        except (ValueError, KeyError):
            pass
    t0 = time.perf_counter()
    cfg, bundle, encoder = held or load_run(run_dir)
    labels_all = bundle.test.labels
    if labels_all.ndim != 1:
        raise ValueError("t-SNE colours points by class; this dataset is multi-label")
    index = subsample(labels_all.numpy(), points, seed=cfg.seed)
    images = bundle.test.images[torch.from_numpy(index)]
    labels = labels_all[torch.from_numpy(index)].numpy()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    features = extract_features(encoder.to(device), images, bundle.info, device).numpy()
    pixels = images.float().div(255).flatten(1).numpy()
    maps = {"features": embed(features, cfg.seed), "pixels": embed(pixels, cfg.seed)}
    result = {
        "points": points,
        "k": k,
        "encoder_mtime_ns": stamp,
        "classes": bundle.info.classes,
        "labels": labels.tolist(),
        "maps": {name: np.round(m, 3).tolist() for name, m in maps.items()},
        "neighbourhood_hit": {name: neighbourhood_hit(m, labels, k) for name, m in maps.items()},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_text(cache, json.dumps(result))
    return result
