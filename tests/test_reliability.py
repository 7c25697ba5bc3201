"""A killed run loses nothing; a bad checkpoint, a diverging loss or a broken plugin never corrupts a result."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from sslkit import Component, Pretext, UsageError, hookimpl, rundir
from sslkit.cli import main
from sslkit.config import RunConfig
from sslkit.engine.checkpoint import load_checkpoint, previous_path, save_checkpoint
from sslkit.registry import Provider, load_registry
from sslkit.runner import run

RUN = ["run", "--data", "digits", "--epochs", "4", "--seed", "3", "--eval", "linear"]
# FixMatch adds a moving average, a second (labeled) sampler and its own augmentation streams
FIXMATCH = [
    "run",
    "--pretext",
    "fixmatch",
    "--data",
    "digits",
    "--epochs",
    "3",
    "--seed",
    "3",
    "--eval",
    "linear,head",
]


def _sslkit(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "sslkit", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def _outcome(run_dir: Path) -> tuple[list[dict], dict, bytes]:
    """What must match bit for bit: the metric log (minus timings), the results and the final weights."""
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for record in metrics:
        record.pop("seconds"), record.pop("images_per_s")
    results = json.loads((run_dir / "results.json").read_text())["results"]
    return metrics, results, (run_dir / "encoder.safetensors").read_bytes()


# the Improved-GAN recipe adds two optimizers, the discriminator's moving average and the weight-norm init state
IMPROVED_GAN = [
    "run",
    "--pretext",
    "sgan",
    "--encoder",
    "wn-mlp",
    "--data",
    "digits",
    "--epochs",
    "4",
    "--seed",
    "3",
]
IMPROVED_GAN += [
    "--lr",
    "0.003",
    "--eval",
    "linear,head",
    "--pretext-opt",
    "generator=mlp",
    "--pretext-opt",
    "ema=0.999",
]
IMPROVED_GAN += ["--pretext-opt", "head=weight-norm", "--pretext-opt", "head_noise=0.5"]


@pytest.mark.parametrize("argv", [RUN, FIXMATCH, IMPROVED_GAN], ids=["rotation", "fixmatch", "improved-gan"])
def test_run_killed_mid_epoch_resumes_to_the_same_result(argv: list[str], tmp_path: Path) -> None:
    """SIGKILL at two random moments (each after at least one mid-epoch checkpoint), resume after each."""
    argv = [
        *argv,
        "--no-baselines",
        "--tsne-points",
        "0",
    ]  # both have tests of their own; training is the point
    reference = _sslkit([*argv, "--out", str(tmp_path / "ref")])
    killed = _sslkit([*argv, "--checkpoint-every", "0.2", "--out", str(tmp_path / "killed")])
    rng = random.Random(os.getpid())
    kills = 0
    proc = killed
    for attempt in range(2):
        deadline = time.monotonic() + 120
        while not list((tmp_path / "killed").glob("*/checkpoint.pt")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        (run_dir,) = (tmp_path / "killed").iterdir()
        proc = _sslkit(["run", "--resume", str(run_dir)])
        if attempt == 0:
            time.sleep(rng.uniform(2.0, 4.0))  # the resumed process imports, reloads, then trains a while
    _finish(proc)
    _finish(reference)
    assert kills >= 1, "the run finished before it could be killed: make it longer"
    (ref_dir,) = (tmp_path / "ref").iterdir()
    assert _outcome(run_dir) == _outcome(ref_dir)
    # resuming a finished run again is harmless: same numbers, nothing lost
    _finish(_sslkit(["run", "--resume", str(run_dir)]))
    assert _outcome(run_dir) == _outcome(ref_dir)


def test_truncated_or_altered_checkpoint_is_refused_and_the_previous_one_kept(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": torch.tensor(1)})
    save_checkpoint(path, {"step": torch.tensor(2)})
    assert int(load_checkpoint(path)["step"]) == 2
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match=r"checkpoint .*checkpoint\.pt is corrupt.*checkpoint\.prev\.pt"):
        load_checkpoint(path)
    assert int(load_checkpoint(previous_path(path))["step"]) == 1
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same length, one bit flipped
    with pytest.raises(UsageError, match="corrupt"):
        load_checkpoint(path)


def test_checkpoints_never_unpickle_arbitrary_objects(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"evil": types.SimpleNamespace(x=1)})
    with pytest.raises(UsageError, match="cannot be read"):
        load_checkpoint(path)


class _NaNAt(Pretext):
    """A tiny pretext whose loss turns NaN once, at a chosen global step."""

    defaults = {"epochs": 3, "batch_size": 100, "lr": 0.001, "optimizer": "sgd", "warmup_epochs": 0}
    calls = 0

    def __init__(self, encoder: nn.Module, info, nan_step: int = 20) -> None:
        super().__init__(encoder, info)
        self.head = nn.Linear(encoder.feature_dim, 1)
        self.nan_step = nan_step

    def losses(self, batch):
        type(self).calls += 1
        loss = self.head(self.encoder(self.info.normalize(batch.images))).tanh().pow(2).mean()
        if type(self).calls == self.nan_step:
            loss = loss * float("nan")
        return {"loss": loss, "square": loss.detach()}


@hookimpl
def sslkit_pretexts():
    return [Component("nan-at", _NaNAt, "loss turns NaN once", {"nan_step": 20})]


def _nan_registry():
    return load_registry(extra_plugins=[(sys.modules[__name__], Provider("nan-test", "tests", "0"))])


def test_nan_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    _NaNAt.calls = 0
    cfg = RunConfig(pretext="nan-at", data="digits", out=str(tmp_path / "runs"), checkpoint_every=0)
    with pytest.raises(UsageError, match=r"loss became nan at step 20 \(epoch 2\): loss=nan, square=nan"):
        run(cfg, registry=_nan_registry(), quiet=True)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1  # 12 steps per epoch: epoch 1 was good
    assert not (run_dir / "results.json").exists()


def test_on_nan_lower_lr_resumes_from_the_checkpoint_with_half_the_rate(tmp_path: Path) -> None:
    _NaNAt.calls = 0
    cfg = RunConfig(pretext="nan-at", data="digits", out=str(tmp_path), checkpoint_every=0, on_nan="lower-lr")
    result = run(cfg, registry=_nan_registry(), quiet=True)
    metrics = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    # 12 steps per epoch, one warm-up step, cosine over the other 35: epoch 2's peak is its first step's, halved
    assert metrics[1]["lr"] == pytest.approx(0.5 * 0.001 * 0.5 * (1 + math.cos(math.pi * 11 / 35)))
    assert "linear" in result.results
    assert load_checkpoint(result.run_dir / "checkpoint.pt")["lr_halvings"] == 1  # a resume goes on from it


def test_concurrent_runs_get_their_own_directories_and_a_live_lock_is_refused(tmp_path: Path) -> None:
    first, second = rundir.create(tmp_path, "same-name"), rundir.create(tmp_path, "same-name")
    assert first != second and first.is_dir() and second.is_dir()
    (first / "run.lock").write_text(str(os.getppid()))  # a live process that is not us
    with pytest.raises(UsageError, match=f"in use by process {os.getppid()}"), rundir.locked(first):
        pass
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (second / "run.lock").write_text(str(dead.pid))  # stale: its process is gone
    with rundir.locked(second):
        assert (second / "run.lock").read_text() == str(os.getpid())
    assert not (second / "run.lock").exists()


def test_resume_of_a_run_in_use_is_refused_without_touching_it(tmp_path: Path, capsys) -> None:
    assert main(["run", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    (run_dir / "run.lock").write_text(str(os.getppid()))
    assert main(["run", "--resume", str(run_dir)]) == 2
    assert "in use by process" in capsys.readouterr().err
    after = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.name != "run.lock"}
    assert after == {k: v for k, v in before.items() if k != "run.lock"}


def test_a_run_keeps_the_options_it_was_built_with_when_the_recipe_changes_later(tmp_path: Path) -> None:
    from sslkit import build

    runs = tmp_path / "runs"
    assert main(["run", "--data", "digits", "--epochs", "1", "--eval", "linear", "--out", str(runs)]) == 0
    (run_dir,) = runs.iterdir()
    record = json.loads((run_dir / rundir.CONFIG).read_text())
    # as if the run had been started when the recipe's default threshold and length were other ones
    record["config"]["pretext_options"] = {}
    record["options"]["pretext"]["threshold"] = 0.7
    record["options"]["pretext"]["deleted_since"] = 1  # a default of an option the plugin no longer has
    record["config"]["epochs"], record["schedule"]["epochs"] = None, 3
    record["schedule"]["warmup_epochs"] = 0.25  # the recipe's is 0
    (run_dir / rundir.CONFIG).write_text(json.dumps(record))
    registry = load_registry()
    cfg, saved = build.saved_config(run_dir, registry)
    assert build.resolve(registry, cfg).pretext_options["threshold"] == 0.7
    assert "deleted_since" not in cfg.pretext_options
    schedule = build.schedule(registry, build.resolve(registry, cfg), saved["schedule"])
    assert (schedule.epochs, schedule.warmup_epochs) == (3, 0.25)


# ------------------------------------------------------------------------------------------- plugins


class _Raises:
    @staticmethod
    @hookimpl
    def sslkit_pretexts():
        raise RuntimeError("boom inside the hook")


class _Malformed:
    @staticmethod
    @hookimpl
    def sslkit_encoders():
        return [{"name": "not-a-component"}]


class _Duplicate:
    @staticmethod
    @hookimpl
    def sslkit_pretexts():
        return [Component("rotation", _NaNAt, "an impostor")]


def test_broken_plugins_are_reported_with_their_distribution_and_the_rest_keep_working(capsys) -> None:
    registry = load_registry(
        extra_plugins=[
            (_Raises(), Provider("raises", "dist-raises", "1.0")),
            (_Malformed(), Provider("malformed", "dist-malformed", "2.0")),
            (_Duplicate(), Provider("dup", "dist-dup", "3.0")),
        ]
    )
    broken = {str(b.provider): b.error for b in registry.broken}
    assert "boom inside the hook" in broken["dist-raises 1.0 (raises)"]
    assert "not a Component" in broken["dist-malformed 2.0 (malformed)"]
    with pytest.raises(
        UsageError, match=r"pretext 'rotation' is provided twice: by sslkit .* and by dist-dup 3.0"
    ):
        registry.get("pretext", "rotation")
    assert registry.get("encoder", "convnet").name == "convnet"  # the others are untouched
