"""What a checkpoint costs: the time to write the full training state of a rotation run (model, optimizer,
scheduler, RNG streams) atomically with its checksum, as a share of one epoch's training time.

    python benchmarks/checkpoint_cost.py --epoch-seconds 640
(--epoch-seconds: a measured epoch, e.g. `seconds` in a run's metrics.jsonl)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sslkit.engine.checkpoint import load_checkpoint, save_checkpoint
from sslkit.engine.loop import Schedule, Trainer
from sslkit.interfaces import DataInfo
from sslkit.registry import load_registry


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epoch-seconds", type=float, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    registry = load_registry()
    info = DataInfo("28x28", [str(i) for i in range(10)], 1, 28, (0.5,), (0.25,))
    pretext = registry.build("pretext", "rotation", registry.build("encoder", "convnet", 1, 28), info)
    pool = torch.zeros(256, 1, 28, 28, dtype=torch.uint8)
    trainer = Trainer(
        pretext, pool, None, Schedule(1, 64, 0.05, 5e-4, "sgd"), torch.device("cpu"), 0, None, False
    )
    trainer.pretext.train_step(
        trainer.make_batch(trainer.epoch_order(0)[0]), trainer.optimizers, trainer.model
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            save_checkpoint(path, trainer.state_dict())
            times.append(time.perf_counter() - start)
        size = path.stat().st_size / 1e6
        start = time.perf_counter()
        load_checkpoint(path)
        load = time.perf_counter() - start
    best = sorted(times)[len(times) // 2]
    print(
        f"rotation/convnet checkpoint: {size:.1f} MB; write (atomic, fsync, sha256) median {best:.3f} s; "
        f"verified load {load:.3f} s"
    )
    print(
        f"one checkpoint per epoch of {args.epoch_seconds:.0f} s: {best / args.epoch_seconds:.2%} of the epoch"
    )
    print(f"reproduce: python benchmarks/checkpoint_cost.py --epoch-seconds {args.epoch_seconds:g}")


if __name__ == "__main__":
    main()
