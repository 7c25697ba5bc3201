"""k-NN speed: sslkit's faiss exact-cosine search against scikit-learn's brute-force cosine KNeighborsClassifier,
on the same features (random Gaussian clusters by default), both voting uniformly over the k nearest.

    OMP_NUM_THREADS=1 python benchmarks/knn_speed.py --bank 60000 --queries 10000 --dim 128 --k 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", type=int, default=60_000, help="labeled features searched (default 60,000)")
    p.add_argument("--queries", type=int, default=10_000, help="test features classified (default 10,000)")
    p.add_argument("--dim", type=int, default=128, help="feature dimension")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--k", type=int, default=20)
    args = p.parse_args()

    from sklearn.neighbors import KNeighborsClassifier
    from sslkit_builtins.evaluators.knn import knn_votes

    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(args.classes, args.dim, generator=gen)
    bank_y = torch.randint(0, args.classes, (args.bank,), generator=gen)
    test_y = torch.randint(0, args.classes, (args.queries,), generator=gen)
    bank = centers[bank_y] + 2.0 * torch.randn(args.bank, args.dim, generator=gen)
    test = centers[test_y] + 2.0 * torch.randn(args.queries, args.dim, generator=gen)

    t0 = time.perf_counter()
    votes = knn_votes(bank, bank_y, test, [args.k], args.classes, "uniform")[args.k]
    t_faiss = time.perf_counter() - t0
    ours = votes.argmax(1).numpy()

    t0 = time.perf_counter()
    ref = KNeighborsClassifier(args.k, algorithm="brute", metric="cosine").fit(bank.numpy(), bank_y.numpy())
    theirs = ref.predict(test.numpy())
    t_sklearn = time.perf_counter() - t0

    agree = float((ours == theirs).mean())
    acc = float((ours == test_y.numpy()).mean())
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"bank {args.bank} x {args.dim}, {args.queries} queries, k={args.k}, OMP_NUM_THREADS={threads}")
    print(f"sslkit knn (faiss IndexFlatIP) {t_faiss:8.2f} s   accuracy {acc:.4f}")
    print(f"scikit-learn brute cosine      {t_sklearn:8.2f} s   predictions agree on {agree:.4%}")
    print(f"speed-up {t_sklearn / t_faiss:.1f}x")
    print("command: OMP_NUM_THREADS=" + threads + " python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
