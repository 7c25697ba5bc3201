"""How well a second round's picks seed fixmatch's graph prior, without training: for a finished round-1 run of
``sslkit run --data D --labels N --select auto`` (MNIST, Fashion-MNIST), the share of the training pool that label
propagation (``fixmatch.propagate_labels`` on the pixels' graph, the prior fixmatch starts from) labels right from

* one round of 2N ``auto`` picks from the pixels (what ``--labels 2N --select auto`` labels),
* round 1's N plus N chosen with its model (``--select-from ROUND1``), weighted by its uncertainty,
* the same N chosen by typicality alone (``typiclust weight="none"``).

Minutes instead of a training run per variant (one thread of machine E: about 2 minutes a run).

    python benchmarks/rounds_prior.py runs/ROUND1_SEED0 runs/ROUND1_SEED1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("round1", nargs="+", type=Path, help="finished round-1 run directories (--select)")
    args = p.parse_args()

    from picks_prior import pool_labeled_right  # this script's folder is on sys.path
    from sslkit_builtins.selectors.typiclust import TypiClust

    from sslkit.build import load_data, resolve_device, run_view, saved_config
    from sslkit.embedding import pixel_embedding
    from sslkit.interfaces import SelectionContext
    from sslkit.labeling import choose, selection_space
    from sslkit.registry import load_registry

    registry = load_registry()
    for run_dir in args.round1:
        cfg, record = saved_config(run_dir, registry)
        bundle = load_data(registry, cfg, record).bundle
        images, truth, classes = bundle.train.images, bundle.train.labels, bundle.info.num_classes
        pixels = pixel_embedding(images)
        first = torch.tensor(record["data"]["selected"])
        n = 2 * len(first)
        features, probabilities = run_view(registry, run_dir, images, resolve_device("cpu"))
        space = selection_space(images, features)
        margin = TypiClust(weight="margin").select(
            SelectionContext(space, n - len(first), first, probabilities, cfg.seed)
        )
        typical = TypiClust(weight="none").select(
            SelectionContext(space, n - len(first), first, probabilities, cfg.seed)
        )
        variants = {
            f"one round of {n}": choose(
                registry, "auto", selection_space(images), n, first[:0], None, cfg.seed
            )[1],
            f"{len(first)} + {len(first)}, margin-weighted": torch.cat([first, torch.as_tensor(margin)]),
            f"{len(first)} + {len(first)}, typicality alone": torch.cat([first, torch.as_tensor(typical)]),
            f"round 1 alone, {len(first)}": first,
        }
        for name, picks in variants.items():
            right = pool_labeled_right(pixels, truth, picks, classes)
            seen = len(torch.unique(truth[picks]))
            print(f"seed {cfg.seed} {name:<32} classes {seen:2d}  pool labeled right {right:.3f}", flush=True)
    print(f"reproduce: python benchmarks/rounds_prior.py {' '.join(map(str, args.round1))}")


if __name__ == "__main__":
    main()
