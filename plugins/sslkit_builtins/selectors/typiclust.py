"""``typiclust``: the most typical image of each large cluster still without a label (Hacohen, Dekel and Weinshall,
"Active Learning on a Budget", ICML 2022).

The pool is clustered by k-means (faiss; of 10 runs from seeded greedy k-means++ starts, the lowest inertia) into
``len(labeled) + n`` clusters (at most ``max_clusters``); clusters of at most ``min_cluster_size`` images are
passed over while a larger one has a free image. Each pick goes to the cluster holding the fewest labeled or
picked images, the largest first, and takes its most typical free image: typicality is the inverse mean Euclidean
distance to the ``k`` nearest neighbours inside the cluster (``min(k, size // 2)``; the whole cluster, labeled
images included, is the density's sample). Labels land on dense, representative images spread over the pool,
never on outliers. MNIST's 60,000 rows: about 3 s per selection of 10 or 20 (one thread of machine E, AVX2).

Later rounds (``ctx.probabilities`` given; ``weight="margin"``, or ``"auto"`` from ``UNSURE_FROM`` labels per
class): among the clusters tied on labeled count, the order is by size times the members' mean uncertainty (1
minus the margin between the classifier's top two probabilities), and inside a cluster by typicality times
uncertainty: images where the model is unsure AND the pool is dense, not isolated outliers. Below that budget the
classifier's margins mislead (TypiClust's low-budget regime) and ``auto`` goes by typicality alone. Evening out
the classes the first round found (each pick to the least-labeled class by the classifier's guess) was measured
and lost to typicality alone on both Fashion-MNIST draws where both ran (50 + 50: 0.7834 / 0.8254 against
0.7955 / 0.8483, draws 4-5; docs/benchmarks.md).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import faiss
import numpy as np
from torch import Tensor

from sslkit import Component, UsageError, hookimpl
from sslkit.interfaces import SelectionContext
from sslkit_builtins.selectors import as_indices, available_mask, margin_uncertainty

# labels per class from which weight="auto" weighs by the classifier's uncertainty (TypiClust's low-budget regime
# below it). Margin weighting lost wherever it was measured: MNIST 5 + 5 (seeds 0-1), the pool share fixmatch's
# prior labels right from the picks, margin-weighted 0.831 / 0.808, typicality alone 0.851 / 0.853; Fashion-MNIST
# trained, margin-weighted second rounds against one round: 20 + 20 0.7565 against 0.7956 (draw 0), 50 + 50
# 0.8112 / 0.7761 against 0.8270 / 0.8115 (draws 3, 4), and in the prior's pool share typicality alone 0.754 /
# 0.770 / 0.766 against 0.735 / 0.770 / 0.756. Ten a class is a guess at where the low-budget regime ends: above
# five a class nothing was measured
UNSURE_FROM = 10
Weight = Literal["auto", "none", "margin"]
WEIGHTS = get_args(Weight)


def kmeans_plus_plus(x: np.ndarray, clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ starting centroids (Arthur and Vassilvitskii 2007; scikit-learn's variant), seeded: each
    next one is the best of ``2 + log(clusters)`` candidates drawn with probability proportional to the squared
    distance to the nearest centroid so far. Small, far clusters get a centroid, which faiss's uniform draw of
    starting points often misses."""
    xd = x.astype(np.float64)
    norms = (xd * xd).sum(axis=1)
    trials = 2 + int(math.log(clusters))
    chosen = [int(rng.integers(len(x)))]
    nearest = np.maximum(norms - 2 * xd @ xd[chosen[0]] + norms[chosen[0]], 0)
    for _ in range(1, clusters):
        total = nearest.sum()
        if total <= 0:  # fewer distinct rows than clusters
            candidates = rng.integers(len(x), size=1)
        else:
            cumulative = np.cumsum(nearest)
            candidates = np.minimum(np.searchsorted(cumulative, rng.random(trials) * total), len(x) - 1)
        dist = np.maximum(norms[:, None] - 2 * xd @ xd[candidates].T + norms[candidates][None, :], 0)
        merged = np.minimum(nearest[:, None], dist)
        best = int(np.argmin(merged.sum(axis=0)))
        chosen.append(int(candidates[best]))
        nearest = merged[:, best]
    return np.ascontiguousarray(x[chosen])


def kmeans_labels(x: np.ndarray, clusters: int, seed: int, niter: int, runs: int = 10) -> np.ndarray:
    """int64 (N,) cluster of each row: of ``runs`` faiss k-means runs on all rows (no subsampling), each from its
    own seeded k-means++ start, the one of lowest inertia (scikit-learn's ``n_init``). Ten picks in MNIST's 16-dim
    spectral embedding (seeds 0-29) saw all 10 classes in 24 draws of 30 from the best of 3 k-means++ starts and
    one run, 29 of 30 with 5 runs, 30 of 30 with 10."""
    rng = np.random.default_rng(seed)
    best_inertia, best = np.inf, None
    for _ in range(runs):
        km = faiss.Kmeans(
            x.shape[1],
            clusters,
            niter=niter,
            seed=seed,
            max_points_per_centroid=max(len(x), 1),
            min_points_per_centroid=1,
            verbose=False,
        )
        km.train(x, init_centroids=kmeans_plus_plus(x, clusters, rng))
        distances, labels = km.index.search(x, 1)
        inertia = float(distances.sum())
        if best is None or inertia < best_inertia:
            best_inertia, best = inertia, labels[:, 0].astype(np.int64)
    assert best is not None, "kmeans_labels needs runs >= 1"
    return best


def typicality(x: np.ndarray, k: int) -> np.ndarray:
    """float64 (M,): 1 / (mean Euclidean distance to the ``min(k, M // 2)`` nearest other rows + 1e-5)."""
    k = min(k, len(x) // 2)
    if k < 1:
        return np.ones(len(x))
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    # the nearest is the row itself (or a duplicate of it): distance 0 either way, so drop the first column
    sq = index.search(x, k + 1)[0][:, 1:]
    return 1.0 / (np.sqrt(np.maximum(sq, 0)).mean(axis=1) + 1e-5)


class TypiClust:
    """Most typical image of each large unlabeled cluster; uncertainty-weighted when probabilities are given."""

    needs_classifier = False

    def __init__(
        self,
        max_clusters: int = 500,
        min_cluster_size: int = 5,
        k: int = 20,
        niter: int = 30,
        weight: Weight = "auto",
    ) -> None:
        if weight not in WEIGHTS:
            raise UsageError(f"typiclust weight must be one of {', '.join(WEIGHTS)}, got {weight!r}")
        if max_clusters < 1 or min_cluster_size < 0 or k < 1 or niter < 1:
            raise UsageError(
                "typiclust needs max_clusters >= 1, min_cluster_size >= 0, k >= 1 and niter >= 1, got "
                f"{max_clusters}, {min_cluster_size}, {k}, {niter}"
            )
        self.max_clusters = max_clusters
        self.min_cluster_size = min_cluster_size
        self.k = k
        self.niter = niter
        self.weight = weight

    def select(self, ctx: SelectionContext) -> Tensor:
        free = available_mask(ctx)
        if ctx.n == 0:
            return as_indices([])
        if self.weight == "margin" and ctx.probabilities is None:
            raise UsageError("typiclust weight='margin' needs the classifier's probabilities on the pool")
        x = np.ascontiguousarray(ctx.embedding.detach().float().cpu().numpy())
        weight = self.weight
        if weight == "auto" and ctx.probabilities is not None:
            enough = len(ctx.labeled) >= UNSURE_FROM * ctx.probabilities.shape[1]
            weight = "margin" if enough else "none"
        uncertainty = None
        if weight == "margin":
            # floored: where the classifier is sure everywhere, size and typicality still decide
            uncertainty = np.maximum(margin_uncertainty(ctx.probabilities), 1e-6)
        return as_indices(self.pick(x, ctx.labeled.numpy(), free, ctx.n, uncertainty, ctx.seed))

    def pick(
        self,
        x: np.ndarray,
        labeled: np.ndarray,
        free: np.ndarray,
        n: int,
        uncertainty: np.ndarray | None,
        seed: int,
    ) -> list[int]:
        """``n`` rows of ``x`` where ``free`` (a mask, updated), each the typical point of the least-labeled
        cluster (``labeled``: rows already labeled), the largest (or most uncertain, with ``uncertainty``) first."""
        clusters = min(len(labeled) + n, self.max_clusters, len(x))
        labels = kmeans_labels(x, clusters, seed, self.niter)
        sizes = np.bincount(labels, minlength=clusters)
        taken = np.bincount(labels[labeled], minlength=clusters)  # labeled or picked, per cluster
        score = sizes.astype(np.float64)
        if uncertainty is not None:  # size x mean uncertainty of the free members
            free_sum = np.bincount(labels[free], weights=uncertainty[free], minlength=clusters)
            free_count = np.bincount(labels[free], minlength=clusters)
            score *= free_sum / np.maximum(free_count, 1)
        big = sizes > self.min_cluster_size
        typical: dict[int, np.ndarray] = {}
        picks: list[int] = []
        for _ in range(n):
            open_ = np.bincount(labels[free], minlength=clusters) > 0
            allowed = open_ & big if (open_ & big).any() else open_
            # fewest labels first, then the highest score, then the lowest cluster id
            ids = np.flatnonzero(allowed)
            best = ids[np.lexsort((ids, -score[ids], taken[ids]))[0]]
            members = np.flatnonzero(labels == best)
            if best not in typical:
                typical[best] = typicality(x[members], self.k)
            value = typical[best] * (uncertainty[members] if uncertainty is not None else 1.0)
            value = np.where(free[members], value, -np.inf)
            chosen = int(members[int(np.argmax(value))])
            picks.append(chosen)
            free[chosen] = False
            taken[best] += 1
        return picks


@hookimpl
def sslkit_selectors() -> list[Component]:
    return [
        Component(
            "typiclust",
            TypiClust,
            "most typical image of each large unlabeled k-means cluster (TypiClust); "
            "uncertainty-weighted when a classifier's probabilities are given",
        )
    ]
