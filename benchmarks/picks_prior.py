"""How good a seed for fixmatch is a set of picks, without training: the share of a data set's training pool that
fixmatch's graph prior (``propagate_labels`` over the pixels' k-NN graph) labels right from the labels of

* a balanced draw (``--labels N``, what the benchmark tables use; a person without labels cannot make it),
* ``auto``'s picks in the pixels' spectral embedding (``--labels N --select auto``),
* uniform random picks (what a person does), with ``--random``.

A minute or two a variant on one thread of machine E, instead of a training run per variant.

    python benchmarks/picks_prior.py --data fashion-mnist --labels 40 100 --seeds 0 1
"""

from __future__ import annotations

import argparse

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--labels", type=int, nargs="+", default=[40, 100])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--random", action="store_true", help="also uniform random picks")
    args = p.parse_args()

    from sslkit.data.budget import split_budget
    from sslkit.data.paths import default_data_root
    from sslkit.embedding import pixel_embedding
    from sslkit.labeling import choose, selection_space
    from sslkit.registry import load_registry

    registry = load_registry()
    bundle = registry.build("dataset", args.data, default_data_root(), False)
    images, truth, classes = bundle.train.images, bundle.train.labels, bundle.info.num_classes
    pixels, space = pixel_embedding(images), selection_space(images)
    none = torch.empty(0, dtype=torch.int64)
    for n in args.labels:
        for seed in args.seeds:
            variants = {
                "balanced": split_budget(truth, n, seed).labeled,
                "auto": choose(registry, "auto", space, n, none, None, seed)[1],
            }
            if args.random:
                variants["random"] = torch.randperm(
                    len(truth), generator=torch.Generator().manual_seed(seed)
                )[:n]
            for name, picks in variants.items():
                right = pool_labeled_right(pixels, truth, picks, classes)
                counts = torch.bincount(truth[picks], minlength=classes).tolist()
                print(
                    f"{n} labels, seed {seed}, {name:<9} per class {counts}  pool labeled right {right:.3f}",
                    flush=True,
                )
    print(
        f"reproduce: python benchmarks/picks_prior.py --data {args.data} --labels "
        f"{' '.join(map(str, args.labels))} --seeds {' '.join(map(str, args.seeds))}{' --random' * args.random}"
    )


if __name__ == "__main__":
    main()
