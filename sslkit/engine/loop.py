"""The pretraining loop: index batches from device-resident uint8 tensors, step the pretext, log each epoch to
``metrics.jsonl`` and checkpoint atomically at epoch ends (and every ``checkpoint_every`` seconds), so a killed
run resumes to exactly the numbers an uninterrupted one reaches."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sslkit.engine import distributed as dist
from sslkit.engine.checkpoint import load_checkpoint, save_checkpoint
from sslkit.engine.scalars import RunFiles, ScalarLog
from sslkit.errors import UsageError
from sslkit.interfaces import Batch, Pretext, Split
from sslkit.util import console, log, training_progress


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


class DistributedUnsupported(RuntimeError):
    """The pretext cannot be trained with several processes."""


@dataclass
class Schedule:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    optimizer: str
    warmup_epochs: float = 1.0
    checkpoint_every: float = 300.0  # seconds
    on_nan: str = "stop"
    sync_batchnorm: bool = False
    wandb: str | None = None  # also log the scalars to this Weights & Biases project


@dataclass
class Trainer:
    pretext: Pretext
    pool: Tensor  # uint8 (N, C, H, W), on the device when it fits
    labeled: Split | None
    schedule: Schedule
    device: torch.device
    seed: int
    files: RunFiles | None = None  # None: nothing is written (tests, benchmarks)
    show_progress: bool = True
    amp: torch.dtype | None = None  # autocast precision of the training steps (bfloat16 on CUDA by default)

    def __post_init__(self) -> None:
        self.rank, self.world = dist.rank(), dist.world_size()
        if self.world > 1:
            # the model is built (identically on every rank); from here each rank draws its own augmentations,
            # dropout masks, noise and labeled picks, or all ranks would apply the same ops to their shards
            torch.manual_seed(self.seed + 1_000_003 * self.rank)
        source = len(self.labeled) if self.pretext.trains_on == "labeled" and self.labeled else len(self.pool)
        if source == 0:
            raise ValueError("nothing to train on: the pool is empty")
        global_batch = min(self.schedule.batch_size, source)
        self.local_batch = max(1, global_batch // self.world)
        self.steps_per_epoch = max(1, source // (self.local_batch * self.world))
        self.source_size = source
        if self.world > 1 and self.pretext.ddp_refusal:
            raise DistributedUnsupported(
                f"pretext {type(self.pretext).__name__} does not run under torchrun: "
                f"{self.pretext.ddp_refusal.rstrip('.')}; run it as one process (without torchrun)"
            )
        # what a step calls for the forward pass: the DistributedDataParallel wrapper under torchrun
        self.model = (
            dist.wrap(self.pretext, self.device, self.schedule.sync_batchnorm)
            if self.world > 1
            else self.pretext
        )
        self.pretext.prepare(self.pool, self.labeled)
        s = self.schedule
        self.optimizers = self.pretext.make_optimizers(s.lr, s.weight_decay, s.optimizer)
        total = s.epochs * self.steps_per_epoch
        warmup = max(1, int(s.warmup_epochs * self.steps_per_epoch))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in self.optimizers]
        self.epoch, self.step_in_epoch, self.sums, self.count = 0, 0, {}, 0
        self.lr_halvings = 0
        self.scalars: ScalarLog | None = None
        self.initial_lrs = [list(sch.base_lrs) for sch in self.schedulers]

    # ------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit, with every rank's RNG streams."""
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device).cpu()
        return {
            "pretext": self.pretext.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "sums": {k: float(v) for k, v in self.sums.items()},
            "count": self.count,
            "rng": dist.all_gather_object(rng),
            "lr_halvings": self.lr_halvings,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pretext.load_state_dict(state["pretext"])
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"]):
            sch.load_state_dict(s)
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in state["sums"].items()}
        self.count = state["count"]
        # --on-nan lower-lr's halvings so far (the schedulers' base rates carry them): a reload never counts back
        self.lr_halvings = max(self.lr_halvings, state.get("lr_halvings", 0))
        rngs = state["rng"]
        if len(rngs) != self.world:
            raise UsageError(
                f"the checkpoint was written by {len(rngs)} process(es) and this run has {self.world}: resume it "
                f"with as many (torchrun --nproc-per-node {len(rngs)} -m sslkit run --resume RUN_DIR)"
            )
        rng = rngs[self.rank]
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    @property
    def checkpoint_path(self) -> Path | None:
        return self.files.checkpoint if self.files else None

    def save(self) -> None:
        state = self.state_dict()  # collective: every rank takes part
        if self.scalars:
            self.scalars.flush()
        if self.checkpoint_path and self.rank == 0:
            save_checkpoint(self.checkpoint_path, state)
        dist.barrier()

    def resume(self) -> None:
        assert self.checkpoint_path is not None
        self.load_state_dict(load_checkpoint(self.checkpoint_path, map_location="cpu"))
        self.truncate_metrics()

    # ------------------------------------------------------------------------------------ data
    def epoch_order(self, epoch: int) -> Tensor:
        """This rank's shuffled index for ``epoch``: a function of (seed, epoch) alone, so resume can skip into it."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.source_size, generator=gen)
        used = order[: self.steps_per_epoch * self.local_batch * self.world]
        return used.view(self.steps_per_epoch, self.world, self.local_batch)[:, self.rank]

    def make_batch(self, index: Tensor) -> Batch:
        index = index.to(self.pool.device if self.pretext.trains_on == "pool" else self.labeled.images.device)
        if self.pretext.trains_on == "labeled":
            assert self.labeled is not None
            images = _to_float(self.labeled.images[index], self.device)
            return Batch(images, images, self.labeled.labels[index].to(self.device), self.amp)
        batch = Batch(_to_float(self.pool[index], self.device), amp=self.amp, index=index)
        if self.pretext.uses_labels:
            assert self.labeled is not None and len(self.labeled) > 0
            # drawn with replacement from this rank's stream (under torchrun each rank's own, see __post_init__)
            n = self.pretext.labeled_batch_size(self.local_batch)
            pick = torch.randint(0, len(self.labeled), (n,))
            batch.labeled_images = _to_float(
                self.labeled.images[pick.to(self.labeled.images.device)], self.device
            )
            batch.labels = self.labeled.labels[pick.to(self.labeled.labels.device)].to(self.device)
        return batch

    # ------------------------------------------------------------------------------------ loop
    def fit(self) -> list[dict[str, Any]]:
        """Train to the last epoch; returns this session's per-epoch records (also in ``metrics.jsonl``)."""
        history: list[dict[str, Any]] = []
        if self.files and self.rank == 0:
            self.scalars = ScalarLog(self.files, self.global_step, self.schedule.wandb)
        try:
            with training_progress(self.show_progress and self.rank == 0) as progress:
                task = progress.add_task(
                    "pretrain", total=self.schedule.epochs * self.steps_per_epoch, terms="", ips="-"
                )
                while True:
                    try:
                        self._train(progress, task, history)
                        return history
                    except Diverged as exc:
                        if (
                            self.schedule.on_nan != "lower-lr"
                            or self.lr_halvings >= 3
                            or not self._has_checkpoint()
                        ):
                            raise
                        self._lower_lr_and_reload(str(exc))
        finally:
            if self.scalars:
                self.scalars.close()
                self.scalars = None

    @property
    def global_step(self) -> int:
        return self.epoch * self.steps_per_epoch + self.step_in_epoch

    def _train(self, progress: Any, task: Any, history: list[dict[str, Any]]) -> None:
        s = self.schedule
        last_save = time.monotonic()
        progress.update(task, completed=self.global_step)
        while self.epoch < s.epochs:
            order = self.epoch_order(self.epoch)
            progress.update(task, description=f"epoch {self.epoch + 1}/{s.epochs}")
            self.pretext.train()
            t0, images_seen = time.perf_counter(), 0
            while self.step_in_epoch < self.steps_per_epoch:
                batch = self.make_batch(order[self.step_in_epoch])
                lr = self.schedulers[0].get_last_lr()[0]
                terms = self.pretext.train_step(batch, self.optimizers, self.model)
                self._check_finite(terms)
                for sch in self.schedulers:
                    sch.step()
                values = {k: float(v) for k, v in terms.items()}
                for k, v in values.items():
                    self.sums[k] = self.sums.get(k, torch.zeros((), dtype=torch.float64)) + v
                self.count += 1
                self.step_in_epoch += 1
                images_seen += len(batch.images) * self.world
                ips = images_seen / max(1e-9, time.perf_counter() - t0)
                if self.scalars:
                    self.scalars.step(self.global_step, {**values, "lr": lr, "images_per_s": ips})
                if self.step_in_epoch % 10 == 1 or self.step_in_epoch == self.steps_per_epoch:
                    terms_text = " ".join(f"{k} {float(v) / self.count:.3f}" for k, v in self.sums.items())
                    progress.update(task, advance=0, terms=terms_text, ips=f"{ips:,.0f}")
                progress.advance(task)
                if s.checkpoint_every and self._checkpoint_due(last_save):
                    self.save()
                    last_save = time.monotonic()
            record = self._end_epoch(time.perf_counter() - t0, images_seen)
            history.append(record)
            if self.show_progress and self.rank == 0 and not console.is_terminal:
                terms_text = ", ".join(
                    f"{k} {v:.4f}"
                    for k, v in record.items()
                    if k not in ("epoch", "lr", "seconds", "images_per_s") and isinstance(v, float)
                )
                log(
                    f"epoch {record['epoch']}/{s.epochs}: {terms_text}; {record['images_per_s']:,.0f} images/s, "
                    f"{record['seconds']:.0f} s"
                )
            last_save = time.monotonic()

    def _checkpoint_due(self, last_save: float) -> bool:
        """Time for a mid-epoch checkpoint? Saving is collective, so under torchrun rank 0's clock decides, and
        only every 10th step, to keep that agreement (a one-number broadcast) off the other steps."""
        if self.world == 1:
            return time.monotonic() - last_save > self.schedule.checkpoint_every
        if (self.epoch * self.steps_per_epoch + self.step_in_epoch) % 10:
            return False
        return dist.agree(time.monotonic() - last_save > self.schedule.checkpoint_every, self.device)

    def _has_checkpoint(self) -> bool:
        return bool(self.checkpoint_path and self.checkpoint_path.exists())

    def _lower_lr_and_reload(self, reason: str) -> None:
        """--on-nan lower-lr: back to the last good checkpoint with half the learning rate."""
        self.resume()
        self.lr_halvings += 1
        scale = 0.5**self.lr_halvings
        for opt, sch, initial in zip(self.optimizers, self.schedulers, self.initial_lrs):
            sch.base_lrs = [lr * scale for lr in initial]
            for group, base, factor in zip(opt.param_groups, sch.base_lrs, sch.lr_lambdas):
                group["lr"] = base * factor(sch.last_epoch)
        log(f"[yellow]{reason}[/]; resuming from the last checkpoint with the learning rate x{scale:g}")

    def _end_epoch(self, seconds: float, images_seen: int) -> dict[str, Any]:
        record: dict[str, Any] = {"epoch": self.epoch + 1}
        means = torch.tensor([float(v) / max(1, self.count) for v in self.sums.values()], dtype=torch.float64)
        if self.world > 1:  # the epoch's mean over every rank's batches
            means = dist.all_reduce_mean(means.to(self.device)).cpu()
        record.update(dict(zip(self.sums, means.tolist())))
        record["lr"] = self._peak_lr(self.epoch)
        record["seconds"] = round(seconds, 3)
        record["images_per_s"] = round(images_seen / max(seconds, 1e-9), 1)
        warning = self.pretext.health(record)
        if warning:
            record["warning"] = warning
            log(f"[yellow]epoch {self.epoch + 1}: {warning}[/]")
        if self.scalars:
            self.scalars.epoch(self.global_step, record)
        if self.files and self.rank == 0:
            self._save_pictures(self.epoch + 1)
            with open(self.files.metrics, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        self.epoch += 1
        self.step_in_epoch, self.sums, self.count = 0, {}, 0
        self.save()
        return record

    def _save_pictures(self, epoch: int) -> None:
        from torchvision.utils import save_image

        assert self.files is not None
        for name, image in self.pretext.pictures().items():
            if not name or not all(c.isalnum() or c == "-" for c in name):
                raise ValueError(f"a picture's name must be letters, digits and dashes, got {name!r}")
            save_image(image.float().cpu(), self.files.picture(name, epoch))

    def _peak_lr(self, epoch: int) -> float:
        """The highest learning rate of the first optimizer's schedule during ``epoch``: what an epoch's plot shows."""
        sch = self.schedulers[0]
        steps = range(epoch * self.steps_per_epoch, (epoch + 1) * self.steps_per_epoch)
        return sch.base_lrs[0] * max(sch.lr_lambdas[0](t) for t in steps)

    def truncate_metrics(self) -> None:
        """Drop log lines of epochs the checkpoint has not finished (written before a kill, redone on resume)."""
        if not self.files or self.rank != 0:
            return
        path = self.files.metrics
        if path.exists():
            lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
            keep = [ln for ln in lines if json.loads(ln)["epoch"] <= self.epoch]
            path.write_text("".join(ln + "\n" for ln in keep))

    def _check_finite(self, terms: dict[str, Tensor]) -> None:
        loss = float(terms["loss"])
        if math.isfinite(loss):
            return
        step = self.epoch * self.steps_per_epoch + self.step_in_epoch + 1
        detail = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
        raise Diverged(f"loss became {loss} at step {step} (epoch {self.epoch + 1}): {detail}")


def prepare_model(model: torch.nn.Module, device: torch.device, compile: bool = False) -> None:
    """In place: channels_last weights (faster convolutions on CPU and GPU alike), and optionally
    ``torch.compile`` of each child module (state-dict keys stay unchanged, so checkpoints are portable)."""
    model.to(device=device, memory_format=torch.channels_last)
    if compile:
        for child in model.children():
            child.compile()


def _to_float(images: Tensor, device: torch.device) -> Tensor:
    return images.to(device, non_blocking=True).float().div_(255)
