"""The raw-pixel baselines on the same label draws as `sslkit run`: the very `linear` and `knn` evaluators a run
uses, given the flattened pixels (in [0, 1]) instead of encoder features. A pretext must beat these.

    python benchmarks/pixel_baseline.py --data fashion-mnist --labels 100 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-root", default=None, help="default: $SSLKIT_DATA, else ~/.cache/sslkit/data")
    args = p.parse_args()

    from sslkit import EvalContext, UsageError
    from sslkit.build import load_data
    from sslkit.config import RunConfig
    from sslkit.data import split_budget
    from sslkit.registry import load_registry

    registry = load_registry()
    cfg = RunConfig.from_dict(
        {"data": args.data, "data_root": args.data_root, "download": False}, source="cli"
    )
    try:
        bundle = load_data(registry, cfg).bundle
    except UsageError as exc:
        print(f"pixel_baseline: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    scores: dict[str, list[float]] = {"linear": [], "knn": []}
    t0 = time.perf_counter()
    for seed in args.seeds:
        budget = split_budget(bundle.train.labels, args.labels, seed, None)
        labeled = bundle.train.subset(budget.labeled)
        pixels = {
            "labeled": labeled.images.float().div(255).flatten(1),
            "test": bundle.test.images.float().div(255).flatten(1),
        }
        ctx = EvalContext(
            encoder=torch.nn.Identity(),
            pretext=None,
            info=bundle.info,
            labeled=labeled,
            test=bundle.test,
            features=pixels.__getitem__,
            device=torch.device("cpu"),
            run_dir=None,
            seed=seed,
        )
        for name in scores:
            accuracy = registry.build("evaluator", name).evaluate(ctx).metrics["accuracy"]
            scores[name].append(accuracy)
        print(f"seed {seed}: " + ", ".join(f"{n} {s[-1]:.4f}" for n, s in scores.items()), flush=True)
    for name, values in scores.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"raw pixels, {name}: {statistics.mean(values):.4f} ± {spread:.4f} over seeds {args.seeds}")
    print(f"{time.perf_counter() - t0:.0f} s; reproduce: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
