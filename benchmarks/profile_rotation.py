"""Where an epoch of rotation pretraining spends its time: the data path against the model's forward and backward.

Runs real steps of the engine's loop (uint8 Fashion-MNIST pool -> `Trainer.make_batch` -> the `rotation` pretext's
`train_step`) under torch.profiler, with three labelled scopes:

* data: indexing the uint8 pool, copying to the device and converting to float (`make_batch`);
* augment: the pretext's batch augmentation and the four rotations (`light_augment`, `all_rotations`);
* step: everything else in `train_step`, i.e. the model's forward, backward and the optimizer.

The share outside the model is (data + augment) / (data + augment + step), each from the profiler's wall-clock total
of its scope.

    python benchmarks/profile_rotation.py --steps 30 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from sslkit.data import default_data_root
from sslkit.engine.loop import Schedule, Trainer, prepare_model
from sslkit.registry import load_registry


def scoped(name: str, fn):
    def wrapper(*args, **kwargs):
        with record_function(name):
            return fn(*args, **kwargs)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = load_registry()
    data = registry.build("dataset", "fashion-mnist", default_data_root(), False)
    encoder = registry.build("encoder", "convnet", 1, 28)
    pretext = registry.build("pretext", "rotation", encoder, data.info)
    prepare_model(pretext, torch.device("cpu"))
    module = __import__(type(pretext).__module__, fromlist=["_"])
    module.light_augment = scoped("augment", module.light_augment)
    module.all_rotations = scoped("augment", module.all_rotations)
    pool = data.train.images
    schedule = Schedule(1, args.batch_size, 0.05, 5e-4, "sgd", 0.1, 0)
    trainer = Trainer(pretext, pool, None, schedule, torch.device("cpu"), 0, show_progress=False)
    order = trainer.epoch_order(0)

    def step(i: int) -> None:
        with record_function("data"):
            batch = trainer.make_batch(order[i])
        with record_function("step"):
            pretext.train_step(batch, trainer.optimizers, trainer.model)

    for i in range(3):
        step(i)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(3, 3 + args.steps):
            step(i)
    seconds = time.perf_counter() - start
    totals = {
        e.key: e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key in ("data", "augment", "step")
    }
    model = totals["step"] - totals["augment"]  # augment runs inside the step's scope
    outside = totals["data"] + totals["augment"]
    print(
        f"rotation on convnet, Fashion-MNIST, batch {args.batch_size}, {args.threads} threads, {args.steps} steps"
    )
    print(f"  data (index, copy, to float) {totals['data']:7.3f} s")
    print(f"  augment (flip/translate, 4 rotations) {totals['augment']:7.3f} s")
    print(f"  model forward + backward + optimizer {model:7.3f} s")
    print(f"  outside the model: {outside / (outside + model):.1%} of the step time")
    print(f"  {args.steps * args.batch_size / seconds:.0f} pool images/s under the profiler")
    print(f"reproduce: python benchmarks/profile_rotation.py --steps {args.steps} --threads {args.threads}")


if __name__ == "__main__":
    main()
