"""Label-free geometry of a pool: cosine k-NN graphs and a spectral embedding, the space selectors choose in.

Why a spectral embedding: on MNIST (60,000 training images), TypiClust's 10 most typical points in the top-64
pixel principal components (:func:`pixel_embedding`) covered 5, 6, 6 of the 10 classes (seeds 0-2); in the
spectral embedding of the same points' k-NN graph 10, 10, 10 (dims=16) and 8, 8, 9 (dims=32). Clusters of a
graph's leading eigenvectors follow its well-connected regions (the classes' manifolds), where k-means in the raw
space cuts along directions of large variance (thickness, slant).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sslkit.errors import UsageError

PIXEL_SIDE = 32  # larger images are area-downsampled to this side before the principal components
PIXEL_DIMS = 64  # principal components kept

# what ``--select auto`` / ``--strategy auto`` resolve to: on MNIST (16-dim spectral embedding of pixel_embedding,
# seeds 0-2) typiclust's 10 picks covered 10, 10, 10 classes, probcover's 8, 8, 8, random's 7, 6, 6
AUTO_SELECTOR = "typiclust"


def normalize_rows(x: Tensor) -> np.ndarray:
    """float32 C-contiguous numpy copy of ``x`` with L2-normalized rows (all-zero rows stay zero)."""
    return torch.nn.functional.normalize(x.detach().float().cpu(), dim=1).contiguous().numpy()


def knn_graph(x: Tensor, k: int, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest neighbours of every row of ``x`` (N, D) by cosine similarity, the row itself excluded.

    Exact search (faiss ``IndexFlatIP`` on L2-normalized rows), ``chunk`` queries at a time. Returns int64
    ``indices`` (N, k), most similar first, and their float32 cosine ``similarities`` (N, k)."""
    import faiss  # here, not at the top: ``import sslkit`` stays light

    if x.ndim != 2:
        raise UsageError(f"knn_graph needs an (N, D) matrix, got shape {tuple(x.shape)}")
    n = len(x)
    if not 1 <= k < n:
        raise UsageError(f"knn_graph needs 1 <= k < N, got k={k} for {n} rows")
    data = normalize_rows(x)
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    indices = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d, i = index.search(data[start:stop], k + 1)
        # drop the row itself wherever it appears (with duplicates it need not be first), else the last column
        keep = np.argsort(i == np.arange(start, stop)[:, None], axis=1, kind="stable")[:, :k]
        indices[start:stop] = np.take_along_axis(i, keep, 1)
        sims[start:stop] = np.take_along_axis(d, keep, 1)
    return torch.from_numpy(indices), torch.from_numpy(sims)


def drop_direction(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The ``m - 1`` columns spanning the part of ``u``'s (N, m) orthonormal column space orthogonal to ``v``
    (which lies in it), each as close as possible to ``u``'s own columns 2..m: ``u`` times the Householder
    reflection that maps ``v``'s coordinates in ``u`` onto the first axis."""
    q = u.T @ (v / np.linalg.norm(v))
    q /= np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    w = q.copy()
    w[0] -= 1.0
    if np.linalg.norm(w) < 1e-12:
        return u[:, 1:]
    w /= np.linalg.norm(w)
    reflected = u - 2.0 * np.outer(u @ w, w)
    return reflected[:, 1:]


def spectral_embedding(
    x: Tensor, dims: int = 32, k: int = 10, seed: int = 0, regularize: float = 0.1
) -> Tensor:
    """Rows of ``x`` (N, D) mapped to the leading nontrivial eigenvectors of their k-NN graph, float32 (N, dims).

    The graph joins each row to its ``k`` cosine nearest neighbours (:func:`knn_graph`), symmetrized with weights
    ``W = (A + A^T) / 2``, and regularized with ``tau / N`` between every pair, ``tau = regularize x`` the mean
    degree, so that a tiny loosely attached set (duplicates) cannot take a leading eigenvector (Zhang and Rohe,
    NeurIPS 2018) and separate components do not make the top eigenvalue degenerate (which Lanczos cannot
    resolve: on two half-moons of 3,000 points, separate components of their graph, ``regularize=0`` loses the
    moons, 0.1 keeps them). The ``dims + 1`` eigenvectors of largest eigenvalue of the regularized
    ``D^-1/2 W D^-1/2`` (dense up to 500 rows, else ARPACK ``eigsh`` from a start vector drawn
    from ``seed``: deterministic) lose the trivial direction ``sqrt(degree)`` (not merely the first vector, so
    that separate components stay apart), signs are fixed (largest entry positive) and rows L2-normalized (Ng,
    Jordan and Weiss 2001).

    Time, on 2 CPU cores busy with other work as well: MNIST's 60,000 top-64 pixel principal components, dims=32,
    13 s on one thread (exact k-NN search 9 s, eigenvectors 4 s), 34 s on two contended threads; 60,000 x 64
    random rows 26 s on two contended threads (k-NN search 11 s; measured before the regularization)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import LinearOperator, eigsh

    n = len(x)
    if dims < 1 or dims + 2 > n:
        raise UsageError(f"spectral_embedding needs 1 <= dims <= N - 2, got dims={dims} for {n} rows")
    indices, _ = knn_graph(x, min(k, n - 1))
    rows = np.repeat(np.arange(n), indices.shape[1])
    a = sp.csr_matrix((np.ones(rows.size), (rows, indices.numpy().ravel())), shape=(n, n))
    w = ((a + a.T) * 0.5).tocsr()
    degree = np.asarray(w.sum(axis=1)).ravel()
    tau = regularize * float(degree.mean())  # W + (tau / N) 11^T: its degrees are degree + tau
    scale = 1.0 / np.sqrt(degree + tau)
    m = (sp.diags(scale) @ w @ sp.diags(scale)).tocsr()

    def matvec(v: np.ndarray) -> np.ndarray:
        v = v.reshape(n, -1)
        return m @ v + (tau / n) * np.outer(scale, scale @ v)

    if n <= 500:
        values, vectors = np.linalg.eigh(matvec(np.eye(n)))
        values, vectors = values[-(dims + 1) :], vectors[:, -(dims + 1) :]
    else:
        op = LinearOperator((n, n), matvec=matvec, matmat=matvec, dtype=np.float64)
        v0 = np.random.default_rng(seed).standard_normal(n)
        values, vectors = eigsh(
            op, k=dims + 1, which="LA", v0=v0, tol=1e-6, ncv=min(n, max(2 * dims + 3, 40))
        )
    u = drop_direction(vectors[:, np.argsort(-values, kind="stable")], np.sqrt(degree + tau))
    u *= np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    out = torch.from_numpy(np.ascontiguousarray(u, dtype=np.float32))
    return torch.nn.functional.normalize(out, dim=1)


def _pixel_rows(images: Tensor) -> Tensor:
    """uint8 images -> flattened float rows, each centred and of unit norm (downsampled to ``PIXEL_SIDE``)."""
    x = images.cpu().float()
    if max(x.shape[-2:]) > PIXEL_SIDE:
        x = torch.nn.functional.adaptive_avg_pool2d(x, PIXEL_SIDE)
    x = x.flatten(1)
    return torch.nn.functional.normalize(x - x.mean(1, keepdim=True), dim=1)


def pixel_embedding(images: Tensor, dims: int = PIXEL_DIMS, chunk: int = 8192) -> Tensor:
    """Each image as a unit vector in the top ``dims`` principal components of its centred, unit-norm pixels.
    Exact and deterministic (an eigendecomposition of the covariance, accumulated in chunks)."""
    n = len(images)
    total, gram = None, None
    for start in range(0, n, chunk):
        rows = _pixel_rows(images[start : start + chunk]).double()
        total = rows.sum(0) if total is None else total + rows.sum(0)
        gram = rows.T @ rows if gram is None else gram + rows.T @ rows
    assert total is not None and gram is not None
    mean = total / n
    _, vectors = torch.linalg.eigh(gram / n - torch.outer(mean, mean))
    basis = vectors[:, -min(dims, len(mean)) :].float()
    out = torch.cat([(_pixel_rows(images[s : s + chunk]) - mean.float()) @ basis for s in range(0, n, chunk)])
    return torch.nn.functional.normalize(out, dim=1)
