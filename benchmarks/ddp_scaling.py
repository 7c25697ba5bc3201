"""Scale-out numbers: (1) pretraining images/s with one process against two gloo processes launched by torchrun
on this machine; (2) the bytes SimCLR's gather of projections moves per step, by batch size and rank count.

    python benchmarks/ddp_scaling.py --pretext simclr --pool-size 4096

(1) runs `sslkit run` twice on Fashion-MNIST (a seeded pool subset, one epoch, the same global batch) and reads
the images/s the engine logged in metrics.jsonl. On 2 CPU cores, two processes of one thread each compete for the
same cores as one process of two threads: no speed-up is expected; the point is that the numbers are honest.
(2) is arithmetic: per step every rank all-gathers both views' projections (forward) and reduce-scatters their
gradients (backward): 2 views x 2 directions x (W-1)/W x global batch x dim x 4 bytes through each rank's link,
next to DDP's ring all-reduce of the gradients, 2 (W-1)/W x parameters x 4 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def throughput(nproc: int, args: argparse.Namespace, out: Path) -> float:
    cmd = ["-m", "sslkit", "run", "--pretext", args.pretext, "--data", "fashion-mnist", "--epochs", "1"]
    cmd += ["--pool-size", str(args.pool_size), "--batch-size", str(args.batch_size), "--out", str(out)]
    cmd += ["--eval", "knn"]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads // nproc))}
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
        launcher += ["--master-port", str(args.port)]
        full = launcher + cmd
    else:
        full = [sys.executable, *cmd]
    subprocess.run(full, env=env, check=True, capture_output=True)
    (run_dir,) = out.iterdir()
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    return float(record["images_per_s"])


def gather_megabytes(global_batch: int, ranks: int, dim: int = 128) -> float:
    return 2 * 2 * (ranks - 1) / ranks * global_batch * dim * 4 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pretext", default="simclr")
    parser.add_argument("--pool-size", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=29533)
    parser.add_argument("--skip-run", action="store_true", help="only print the communication table")
    args = parser.parse_args()

    if not args.skip_run:
        with tempfile.TemporaryDirectory() as tmp:
            one = throughput(1, args, Path(tmp) / "one")
            two = throughput(2, args, Path(tmp) / "two")
        print(
            f"{args.pretext}, Fashion-MNIST pool {args.pool_size}, global batch {args.batch_size}, {args.threads} cores"
        )
        print(f"  1 process x {args.threads} threads : {one:8.1f} images/s")
        print(
            f"  2 processes x {max(1, args.threads // 2)} thread(s): {two:8.1f} images/s   x{two / one:.2f}"
        )

    resnet18_grads = 11.2e6 * 4 * 2 / 1e6  # ring all-reduce: ~2x the gradient bytes per rank
    print("SimCLR projection gather (dim 128, fp32), MB through each rank's link per step:")
    print(
        f"  {'global batch':>12} {'8 GPUs':>8} {'64 GPUs':>8}   (DDP gradient all-reduce, resnet18: ~{resnet18_grads:.0f} MB)"
    )
    for batch in (256, 1024, 4096, 16384):
        print(f"  {batch:>12} {gather_megabytes(batch, 8):8.2f} {gather_megabytes(batch, 64):8.2f}")
    print(
        f"reproduce: python benchmarks/ddp_scaling.py --pretext {args.pretext} --pool-size {args.pool_size} "
        f"--batch-size {args.batch_size} --threads {args.threads}"
    )


if __name__ == "__main__":
    main()
