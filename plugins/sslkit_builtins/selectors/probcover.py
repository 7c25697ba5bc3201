"""``probcover``: greedy maximum coverage of δ-balls (Yehuda, Dekel, Hacohen and Weinshall, "Active Learning
Through a Covering Lens", NeurIPS 2022).

Rows are L2-normalized; a δ-ball holds the rows at Euclidean distance below δ (cosine similarity above
``1 - δ²/2``, the paper's distance on normalized features). Each pick is the free image whose ball covers the most
images not yet covered; images in the balls of labeled ones count as covered from the start. Once everything is
covered, the remaining picks are a seeded uniform draw.

δ (``delta=None``): the largest radius whose balls are pure for a fraction ``alpha`` of the pool with respect to
k-means pseudo-labels (``pseudo_classes`` clusters of the normalized rows; default the paper's, as many as the
labels' classes where the context knows them (``ctx.classes``), else ``len(labeled) + n``, at most 500). A
ball around a row is pure exactly while δ stays at or below the distance to the row's nearest neighbour of another
pseudo-label, so δ is a quantile of those distances (exact nearest-other searches from up to 10,000 seeded
rows), with no grid over δ.

The balls are sparse neighbour lists (faiss range search, CSR), never an N x N matrix, and coverage is counted
over "witness" images: all of them up to ``witnesses``, else a seeded uniform sample of that many (picks still
come from the whole pool; the covered fraction of a sample estimates the pool's), fewer where the balls would
hold more than ``max_edges`` pairs (5 bytes each, twice). Finding the balls is a pass over all N x witnesses
pairs: on MNIST's 60,000 rows (one thread of a busy 2-core machine) a selection took 28 s with all 60,000 as
witnesses, 10-11 s with the default 20,000 (the same classes covered).

On MNIST pixel embeddings its greedy piles into the densest classes (the "1"s: 1 class of 10 with 10 picks in
the principal components, 8 in their spectral embedding, where typiclust covers 10): it wants an embedding whose
balls are about as dense everywhere, as the paper's self-supervised features are.
"""

from __future__ import annotations

import math

import faiss
import numpy as np
import scipy.sparse as sp
from torch import Tensor

from sslkit import Component, UsageError, hookimpl
from sslkit.embedding import normalize_rows
from sslkit.interfaces import SelectionContext
from sslkit_builtins.selectors import as_indices, available_mask, seeded_fill
from sslkit_builtins.selectors.typiclust import kmeans_labels

PURITY_SAMPLE = 10_000  # rows whose ball purity sets δ: the 5 % quantile of 10,000 values is precise enough
EDGE_SAMPLE = 1_000  # rows whose ball sizes estimate the graph's size


def nearest_other_distance(x: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """float64 (Q,): Euclidean distance from normalized rows ``queries`` to the nearest row (of all of ``x``)
    with another label; exact."""
    out = np.full(len(queries), np.inf)
    for c in np.unique(labels[queries]):
        inside = labels == c
        if inside.all():
            continue
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(np.ascontiguousarray(x[~inside]))
        mine = labels[queries] == c
        sim = index.search(np.ascontiguousarray(x[queries[mine]]), 1)[0][:, 0].astype(np.float64)
        out[mine] = np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0))
    return out


def purity_delta(x: np.ndarray, labels: np.ndarray, alpha: float, queries: np.ndarray) -> float:
    """The largest δ whose balls are pure (one pseudo-label) around at least a fraction ``alpha`` of the rows
    ``queries`` (a ball is pure while δ <= the distance to the nearest row of another label)."""
    d = np.sort(nearest_other_distance(x, labels, queries))
    return float(d[min(math.floor((1.0 - alpha) * len(d)), len(d) - 1)])


def witness_count(x: np.ndarray, delta: float, max_edges: int, rng: np.random.Generator) -> int:
    """How many rows can witness coverage: all of them, unless every row's ball over all rows would hold more than
    ``max_edges`` pairs in all (mean ball size estimated from ``EDGE_SAMPLE`` rows against up to 10,000 rows)."""
    n = len(x)
    others = np.sort(rng.permutation(n)[: min(n, 10_000)])
    rows = np.sort(rng.permutation(n)[:EDGE_SAMPLE])
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(np.ascontiguousarray(x[others]))
    found = index.range_search(np.ascontiguousarray(x[rows]), 1.0 - delta * delta / 2.0)[2]
    fraction = max(len(found), 1) / (len(rows) * len(others))  # of the pool inside a ball, on average
    fits = int(max_edges / (n * fraction) * 0.8)
    return n if fits >= n else max(min(n, 256), fits)


def ball_graph(
    x: np.ndarray, witnesses: np.ndarray, delta: float, max_edges: int, chunk: int = 4096
) -> sp.csr_matrix:
    """CSR (N, W), int8 ones: row i marks the witnesses (rows ``witnesses`` of ``x``) within ``delta`` of row i."""
    n = len(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(np.ascontiguousarray(x[witnesses]))
    threshold = 1.0 - delta * delta / 2.0
    counts, parts, edges = [np.zeros(1, dtype=np.int64)], [], 0
    for start in range(0, n, chunk):
        lims, _, found = index.range_search(x[start : start + chunk], threshold)
        edges += len(found)
        if edges > max_edges:
            raise UsageError(
                f"probcover: balls of radius delta={delta:.4g} hold over {max_edges} pairs of images; "
                "give a smaller delta, or raise max_edges"
            )
        counts.append(np.diff(lims).astype(np.int64))
        parts.append(found.astype(np.int32))
    indptr = np.cumsum(np.concatenate(counts))
    indices = np.concatenate(parts)
    return sp.csr_matrix((np.ones(len(indices), dtype=np.int8), indices, indptr), shape=(n, len(witnesses)))


def gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The concatenated entries of compressed ``rows`` (CSR rows, or CSC columns)."""
    starts, stops = indptr[rows], indptr[rows + 1]
    lengths = stops - starts
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return indices[offsets + np.arange(int(lengths.sum()))]


class ProbCover:
    """Greedy maximum coverage of δ-balls; δ from pseudo-label purity unless given."""

    needs_classifier = False

    def __init__(
        self,
        delta: float | None = None,
        alpha: float = 0.95,
        pseudo_classes: int | None = None,
        niter: int = 30,
        max_edges: int = 20_000_000,
        witnesses: int = 20_000,
    ) -> None:
        if delta is not None and not 0 < delta <= 2:
            raise UsageError(
                f"probcover delta must be in (0, 2] (distance between unit vectors), got {delta}"
            )
        if not 0 < alpha <= 1:
            raise UsageError(f"probcover alpha must be in (0, 1], got {alpha}")
        if pseudo_classes is not None and pseudo_classes < 2:
            raise UsageError(f"probcover pseudo_classes must be >= 2, got {pseudo_classes}")
        if niter < 1 or max_edges < 1 or witnesses < 1:
            raise UsageError(
                f"probcover niter, max_edges and witnesses must be >= 1, got {niter}, {max_edges}, {witnesses}"
            )
        self.delta = delta
        self.alpha = alpha
        self.pseudo_classes = pseudo_classes
        self.niter = niter
        self.max_edges = max_edges
        self.witnesses = witnesses
        self.last_delta: float | None = None  # the δ of the latest selection, for the record
        self.last_witnesses: int | None = None  # how many images measured its coverage

    def choose_delta(self, x: np.ndarray, ctx: SelectionContext) -> float:
        """The given δ, else the purity δ, estimated on up to ``PURITY_SAMPLE`` seeded rows."""
        if self.delta is not None:
            return self.delta
        # MNIST's spectral pixel space, seeds 0-2: ten clusters saw 9 / 10 / 10 classes at 20 / 40 / 100 picks on
        # every seed, one cluster a pick 8 / 9 / 9-10 (no 7 at 40; at 10 picks the two rules agree). A later round
        # whose labels name fewer classes than exist (sslkit suggest passes that count): five labels each of two
        # digits, seeds 0-2, labels and 10 / 20 picks together saw 10, 9, 9 / 10, 10, 10 classes with two clusters,
        # the same or fewer with ten (10, 9, 9 / 10, 9, 9) and with one a pick (8, 7, 8 / 9, 8, 9)
        classes = self.pseudo_classes or ctx.classes or min(len(ctx.labeled) + ctx.n, 500)
        classes = max(2, min(classes, len(x)))
        labels = kmeans_labels(x, classes, ctx.seed, self.niter)
        queries = np.sort(np.random.default_rng(ctx.seed).permutation(len(x))[:PURITY_SAMPLE])
        return max(purity_delta(x, labels, self.alpha, queries), 1e-6)

    def select(self, ctx: SelectionContext) -> Tensor:
        free = available_mask(ctx)
        if ctx.n == 0:
            return as_indices([])
        x = normalize_rows(ctx.embedding)
        delta = self.last_delta = self.choose_delta(x, ctx)
        rng = np.random.default_rng([ctx.seed, 1])
        count = min(witness_count(x, delta, self.max_edges, rng), self.witnesses)
        witnesses = np.arange(len(x)) if count == len(x) else np.sort(rng.permutation(len(x))[:count])
        self.last_witnesses = count
        graph = ball_graph(x, witnesses, delta, self.max_edges)  # image -> the witnesses its ball covers
        by_witness = graph.tocsc()  # witness -> the images whose balls cover it
        covered = np.zeros(len(witnesses), dtype=bool)
        covered[gather(graph.indptr, graph.indices, ctx.labeled.numpy())] = True
        degree = graph @ (~covered).astype(np.int32)  # uncovered witnesses in each ball
        picks: list[int] = []
        for _ in range(ctx.n):
            gain = np.where(free, degree, -1)
            best = int(np.argmax(gain))
            if gain[best] <= 0:
                break
            ball = gather(graph.indptr, graph.indices, np.array([best]))
            new = ball[~covered[ball]]
            covered[new] = True
            dropped = np.bincount(gather(by_witness.indptr, by_witness.indices, new), minlength=len(x))
            degree -= dropped.astype(degree.dtype)
            picks.append(best)
            free[best] = False
        return as_indices(seeded_fill(picks, free, ctx.n, ctx.seed))


@hookimpl
def sslkit_selectors() -> list[Component]:
    return [
        Component(
            "probcover",
            ProbCover,
            "greedy max coverage of δ-balls in the embedding (ProbCover); δ from k-means pseudo-label purity",
        )
    ]
