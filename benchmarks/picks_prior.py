"""How good a set of picks is, without training: which classes they see, and the share of a data set's training
pool that fixmatch's graph prior (``propagate_labels`` over the pixels' k-NN graph) labels right from their labels.
The picks come from

* ``balanced``: a balanced draw (``--labels N``, what the benchmark tables use; a person without labels cannot
  make it),
* any selector (``random``, ``typiclust``, ``probcover``, ``auto``) in the space ``sslkit run --select`` uses, the
  pixels' spectral embedding.

A selection takes seconds to two minutes (``probcover`` the longest), the prior a minute or two on
one thread of machine E (``--no-prior`` skips it and the pixel embedding it propagates over). This is the cheap
stand-in for ``select-mnist.toml`` / ``select-fashion.toml`` (a training run a cell):

    python benchmarks/picks_prior.py --data mnist --labels 10 20 40 100 --seeds 0 1 2 --no-prior \\
        --picks random balanced typiclust probcover auto
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch


def pool_labeled_right(pixels: torch.Tensor, truth: torch.Tensor, picks: torch.Tensor, classes: int) -> float:
    """The share of the images other than ``picks`` that fixmatch's prior, propagated over the graph of ``pixels``
    (:func:`sslkit.embedding.pixel_embedding`) from the picks' ``truth`` labels, labels right."""
    from sslkit_builtins.pretexts.fixmatch import propagate_labels

    labels = torch.full((len(pixels),), -1, dtype=torch.int64)
    labels[picks] = truth[picks]
    prior = propagate_labels(pixels, labels, classes)
    rest = labels < 0
    return float((prior.argmax(1)[rest] == truth[rest]).float().mean())


def mean_std(values: list[float], digits: int) -> str:
    t = torch.tensor(values, dtype=torch.float64)
    return f"{t.mean():.{digits}f} ± {t.std():.{digits}f}" if len(t) > 1 else f"{t.mean():.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--labels", type=int, nargs="+", default=[40, 100])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--picks", nargs="+", default=["balanced", "auto"], help="balanced, or selectors' names")
    p.add_argument("--no-prior", action="store_true", help="classes seen only, no label propagation")
    args = p.parse_args()

    from sslkit.data.budget import split_budget
    from sslkit.data.paths import default_data_root
    from sslkit.embedding import pixel_embedding
    from sslkit.labeling import choose, selection_space
    from sslkit.registry import load_registry

    registry = load_registry()
    bundle = registry.build("dataset", args.data, default_data_root(), False)
    images, truth, classes = bundle.train.images, bundle.train.labels, bundle.info.num_classes
    space = selection_space(images)
    pixels = None if args.no_prior else pixel_embedding(images)
    none = torch.empty(0, dtype=torch.int64)
    seen: dict[tuple[int, str], list[float]] = defaultdict(list)
    right: dict[tuple[int, str], list[float]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    for n in args.labels:
        for seed in args.seeds:
            for name in args.picks:
                start = time.perf_counter()
                if name == "balanced":
                    picks = split_budget(truth, n, seed).labeled
                else:
                    picks = choose(registry, name, space, n, none, None, seed, classes)[1]
                seconds[name].append(time.perf_counter() - start)
                counts = torch.bincount(truth[picks], minlength=classes)
                seen[n, name].append(float((counts > 0).sum()))
                line = f"{n} labels, seed {seed}, {name:<9} per class {counts.tolist()}"
                if pixels is not None:
                    right[n, name].append(pool_labeled_right(pixels, truth, picks, classes))
                    line += f"  pool labeled right {right[n, name][-1]:.3f}"
                print(line, flush=True)
    print(
        f"\n{args.data}, seeds {' '.join(map(str, args.seeds))}: classes seen (of {classes})"
        + ("" if args.no_prior else " / pool labeled right by the prior")
    )
    print("| labels | " + " | ".join(args.picks) + " |\n|---|" + "---|" * len(args.picks))
    for n in args.labels:
        cells = [
            mean_std(seen[n, name], 1) + ("" if args.no_prior else f" / {mean_std(right[n, name], 3)}")
            for name in args.picks
        ]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("seconds a selection: " + ", ".join(f"{k} {sum(v) / len(v):.1f}" for k, v in seconds.items()))
    print(
        f"reproduce: python benchmarks/picks_prior.py --data {args.data} --labels {' '.join(map(str, args.labels))} "
        f"--seeds {' '.join(map(str, args.seeds))} --picks {' '.join(args.picks)}{' --no-prior' * args.no_prior}"
    )


if __name__ == "__main__":
    main()
