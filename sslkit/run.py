"""``sslkit run``: config -> registry -> dataset -> label budget -> encoder + pretext -> training -> evaluators."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sslkit.config import RunConfig
from sslkit.data import default_data_root, split_budget
from sslkit.engine import distributed as dist
from sslkit.engine.checkpoint import atomic_write_text
from sslkit.engine.loop import DistributedUnsupported, Diverged, Schedule, Trainer, log, prepare_model
from sslkit.errors import UsageError
from sslkit.features import FeatureCache
from sslkit.interfaces import DatasetBundle, EvalContext, Pretext, Split, set_amp
from sslkit.registry import Registry, check_options, load_registry
from sslkit.rundir import ENCODER, load_encoder_weights, read_run_config, save_encoder

DEFAULT_RECIPE = {"epochs": 10, "batch_size": 256, "lr": 0.05, "weight_decay": 5e-4, "optimizer": "sgd"}


@dataclass
class RunResult:
    run_dir: Path
    results: dict[str, dict[str, float]]
    history: list[dict[str, Any]]
    baselines: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"device {name!r} asked for but CUDA is not available here; use --device cpu or auto"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(
            f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)"
        )
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def load_data(registry: Registry, cfg: RunConfig) -> DatasetBundle:
    root = Path(cfg.data_root).expanduser() if cfg.data_root else default_data_root()
    return registry.build("dataset", cfg.data, root, cfg.download, options=cfg.data_options)


def resolve_encoder(registry: Registry, cfg: RunConfig) -> RunConfig:
    """Fill in the encoder when none was given: the ``--init`` run's, else the pretext's recipe (its
    ``defaults["encoder"]`` and ``defaults["encoder_options"]``), else convnet. Given options override."""
    if cfg.init is not None:
        saved = read_run_config(Path(cfg.init))["config"]
        if cfg.encoder not in (None, saved["encoder"]):
            raise UsageError(
                f"--init {cfg.init} holds a {saved['encoder']!r} encoder, not {cfg.encoder!r}; "
                f"drop --encoder or init from a run of {cfg.encoder!r}"
            )
        name, options = saved["encoder"], {**saved["encoder_options"], **cfg.encoder_options}
    elif cfg.encoder is None:
        recipe = getattr(registry.get("pretext", cfg.pretext).component.factory, "defaults", {})
        name = recipe.get("encoder", "convnet")
        options = {**recipe.get("encoder_options", {}), **cfg.encoder_options}
    else:
        return cfg
    return dataclasses.replace(cfg, encoder=name, encoder_options=options)


def check_names(registry: Registry, cfg: RunConfig) -> None:
    """Fail on any unknown name or option before anything is loaded or written."""
    cfg = resolve_encoder(registry, cfg)
    for kind, name, options in (
        ("dataset", cfg.data, cfg.data_options),
        ("encoder", cfg.encoder, cfg.encoder_options),
        ("pretext", cfg.pretext, cfg.pretext_options),
    ):
        check_options(registry.get(kind, name), options)
    for name in cfg.eval:
        check_options(registry.get("evaluator", name), cfg.eval_options.get(name, {}))
    unused = set(cfg.eval_options) - set(cfg.eval)
    if unused:
        raise UsageError(f"options given for evaluator(s) {', '.join(sorted(unused))} that are not in --eval")


def recipe(pretext: Pretext, cfg: RunConfig) -> Schedule:
    merged = {**DEFAULT_RECIPE, **pretext.defaults}
    for key in DEFAULT_RECIPE:
        if getattr(cfg, key) is not None:
            merged[key] = getattr(cfg, key)
    return Schedule(
        epochs=int(merged["epochs"]),
        batch_size=int(merged["batch_size"]),
        lr=float(merged["lr"]),
        weight_decay=float(merged["weight_decay"]),
        optimizer=str(merged["optimizer"]),
        warmup_epochs=float(merged.get("warmup_epochs", 1.0)),
        checkpoint_every=cfg.checkpoint_every,
        on_nan=cfg.on_nan,
        sync_batchnorm=cfg.sync_batchnorm,
    )


def new_run_dir(cfg: RunConfig) -> Path:
    parent = Path(cfg.out)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{cfg.data}-{cfg.pretext}-{cfg.encoder}".replace(":", "_").replace("/", "_")
    for suffix in [""] + [f"-{i}" for i in range(2, 1000)]:
        path = parent / (base + suffix)
        try:
            path.mkdir()  # atomic: two runs started in the same second get different directories
            return path
        except FileExistsError:
            continue
    raise UsageError(f"could not create a run directory under {parent}")


def acquire_lock(run_dir: Path) -> None:
    """One live process per run directory; a lock left by a dead process is taken over."""
    lock = run_dir / "run.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise UsageError(
                f"run directory {run_dir} is in use by process {pid}; wait for it or kill it"
            ) from None
        lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))


def release_lock(run_dir: Path) -> None:
    (run_dir / "run.lock").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process whose parent died too may linger as a zombie: it holds nothing
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _provenance(init: Path) -> dict[str, Any]:
    """Where an ``--init`` run's weights came from: its directory, method and the weights' digest."""
    import hashlib

    saved = read_run_config(init)["config"]
    digest = hashlib.sha256((init / ENCODER).read_bytes()).hexdigest()
    return {"run_dir": str(init.resolve()), "pretext": saved["pretext"], "encoder_sha256": digest}


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for name in ("sslkit", "torch", "torchvision", "timm", "faiss-cpu", "numpy", "pluggy"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "versions": versions,
        "git_commit": commit or None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
    }


def run(
    cfg: RunConfig,
    resume: Path | None = None,
    registry: Registry | None = None,
    quiet: bool = False,
    run_dir: Path | None = None,
) -> RunResult:
    """Train and evaluate; ``run_dir`` fixes the run directory (created if missing; ``sslkit bench`` names its
    cells) instead of a new time-stamped one under ``cfg.out``."""
    registry = registry or load_registry()
    if resume is not None:
        saved = read_run_config(resume)
        cfg = RunConfig.from_dict(saved["config"], source=str(resume / "config.json"))
    cfg = resolve_encoder(registry, cfg)
    check_names(registry, cfg)
    device = dist.local_device(resolve_device(cfg.device))
    dist.init(device)
    try:
        return _run(cfg, resume, registry, quiet, run_dir, device)
    finally:
        dist.shutdown()


def _run(
    cfg: RunConfig,
    resume: Path | None,
    registry: Registry,
    quiet: bool,
    run_dir: Path | None,
    device: torch.device,
) -> RunResult:
    torch.manual_seed(cfg.seed)
    rank0 = dist.rank() == 0

    bundle = load_data(registry, cfg)
    info, train = bundle.info, bundle.train
    budget = split_budget(train.labels, cfg.labels, cfg.seed, cfg.labels_per_class)
    labeled = train.subset(budget.labeled)
    pool = train.images[budget.unlabeled]
    if bundle.unlabeled is not None:
        pool = torch.cat([pool, bundle.unlabeled])
    if cfg.pool_size is not None and cfg.pool_size < len(pool):  # a seeded random subset, for quick runs
        keep = torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.pool_size]
        pool = pool[keep.sort().values]

    torch.manual_seed(cfg.seed)
    encoder = registry.build(
        "encoder", cfg.encoder, info.in_chans, info.image_size, options=cfg.encoder_options
    )
    if cfg.init is not None:
        load_encoder_weights(
            encoder, Path(cfg.init), f"this run's encoder ({cfg.encoder} on {info.in_chans}-channel images)"
        )
    pretext: Pretext = registry.build("pretext", cfg.pretext, encoder, info, options=cfg.pretext_options)
    prepare_model(pretext, device, compile=cfg.compile)
    set_amp(torch.bfloat16 if cfg.amp and device.type == "cuda" else None)
    schedule = recipe(pretext, cfg)
    if schedule.epochs > 0 and pretext.trains_on == "pool" and len(pool) == 0:
        raise UsageError("the unlabeled pool is empty (every training image is labeled); lower --labels")

    if resume is not None:
        run_dir = resume
    elif run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    elif rank0:
        run_dir = new_run_dir(cfg)
    run_dir = Path(
        dist.broadcast_object(run_dir)
    )  # every rank writes its checkpoints' share to rank 0's directory
    if rank0:
        acquire_lock(run_dir)
    try:
        if resume is None and rank0:
            record = {
                "config": cfg.to_dict(),
                "schedule": schedule.__dict__,
                "data": {
                    "train": len(train),
                    "test": len(bundle.test),
                    "labeled": len(labeled),
                    "pool": len(pool),
                    "labels_sha256": budget.digest,
                    "classes": info.classes,
                },
                "device": str(device),
                "init": _provenance(Path(cfg.init)) if cfg.init else None,
                **environment(),
            }
            atomic_write_text(run_dir / "config.json", json.dumps(record, indent=2))
        if not quiet and rank0:
            log(
                f"[bold]run[/] {run_dir}  ({info.name}: {len(labeled)} labeled, {len(pool)} unlabeled, "
                f"{len(bundle.test)} test; {cfg.pretext} on {cfg.encoder}, {schedule.epochs} epochs, {device})"
            )

        t0 = time.perf_counter()
        history = pretrain(pretext, pool, labeled, schedule, device, cfg.seed, run_dir, resume, quiet)
        train_seconds = time.perf_counter() - t0
        if not rank0:  # evaluation and the report happen once, on rank 0
            return RunResult(run_dir, {}, history)
        save_encoder(pretext.encoder, run_dir)
        results = evaluate(
            registry, cfg, pretext, pretext.encoder, info, labeled, bundle.test, device, run_dir
        )
        summary: dict[str, Any] = {
            "results": results,
            "train_seconds": round(train_seconds, 2),
            "labeled": len(labeled),
        }
        if cfg.baselines:
            summary["baselines"] = baselines(registry, cfg, info, labeled, bundle.test, device)
        atomic_write_text(run_dir / "results.json", json.dumps(summary, indent=2))
        _write_report(run_dir)
    finally:
        if rank0:
            release_lock(run_dir)
    return RunResult(run_dir, results, history, summary.get("baselines", {}))


def pretrain(
    pretext: Pretext,
    pool: torch.Tensor,
    labeled: Split,
    schedule: Schedule,
    device: torch.device,
    seed: int,
    run_dir: Path,
    resume: Path | None,
    quiet: bool,
) -> list[dict[str, Any]]:
    """Pretrain (or continue a killed pretraining); ``epochs = 0`` evaluates the encoder as built (e.g. pretrained
    timm weights)."""
    if schedule.epochs == 0:
        return []
    on_device = pool.to(device) if device.type == "cuda" else pool
    try:
        trainer = Trainer(
            pretext, on_device, _to(labeled, device), schedule, device, seed, run_dir, not quiet
        )
    except DistributedUnsupported as exc:
        raise UsageError(str(exc)) from None
    if resume is not None and (run_dir / "checkpoint.pt").exists():
        trainer.resume()
        log(f"resumed at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
    try:
        return trainer.fit()
    except Diverged as exc:
        raise UsageError(
            f"{exc}; the last good checkpoint is kept in {run_dir}. Lower --lr and --resume, "
            "or pass --on-nan lower-lr"
        ) from None


def _to(split: Split, device: torch.device) -> Split:
    return Split(split.images.to(device), split.labels.to(device))


def evaluate(
    registry: Registry,
    cfg: RunConfig,
    pretext: Pretext | None,
    encoder: torch.nn.Module,
    info: Any,
    labeled: Split,
    test: Split,
    device: torch.device,
    run_dir: Path | None,
    names: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Run the evaluators ``names`` (default ``cfg.eval``); with a ``run_dir`` their details go to files there."""
    if len(labeled) == 0:
        raise UsageError("the labeled split is empty; evaluators need --labels of at least one per class")
    features = FeatureCache(encoder, {"labeled": labeled, "test": test}, info, device)
    ctx = EvalContext(encoder, pretext, info, labeled, test, features, device, run_dir, cfg.seed)
    results: dict[str, dict[str, float]] = {}
    for name in cfg.eval if names is None else names:
        evaluator = registry.build("evaluator", name, options=cfg.eval_options.get(name, {}))
        torch.manual_seed(cfg.seed)
        result = evaluator.evaluate(ctx)
        results[name] = result.metrics
        if run_dir is not None and (result.details or result.artifacts):
            atomic_write_text(
                run_dir / f"eval-{name}.json",
                json.dumps({"artifacts": result.artifacts, **result.details}, indent=2),
            )
    return results


def offline_encoder_options(registry: Registry, cfg: RunConfig) -> dict[str, Any]:
    """The run's encoder options for rebuilding it to load or replace its weights: never a pretrained download."""
    options = dict(cfg.encoder_options)
    if "pretrained" in registry.get("encoder", cfg.encoder).component.options:
        options["pretrained"] = False
    return options


class RawPixels(torch.nn.Module):
    """The raw-pixels baseline as an encoder: the normalized image, flattened."""

    def __init__(self, info: Any) -> None:
        super().__init__()
        self.feature_dim = info.in_chans * info.image_size**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def baselines(
    registry: Registry, cfg: RunConfig, info: Any, labeled: Split, test: Split, device: torch.device
) -> dict[str, dict[str, dict[str, float]]]:
    """The run's frozen-feature evaluators (those with ``frozen_features = True``) on the same label draw, on a
    randomly initialized encoder of the same architecture (the run's own starting point) and on raw pixels:
    what training bought."""
    names = [
        n
        for n in cfg.eval
        if getattr(registry.get("evaluator", n).component.factory, "frozen_features", False)
    ]
    if not names:
        return {}
    torch.manual_seed(cfg.seed)
    options = offline_encoder_options(registry, cfg)
    random_init = registry.build("encoder", cfg.encoder, info.in_chans, info.image_size, options=options)
    out = {}
    for label, encoder in (("random_init", random_init.to(device)), ("pixels", RawPixels(info))):
        out[label] = evaluate(registry, cfg, None, encoder, info, labeled, test, device, None, names)
    return out


def _write_report(run_dir: Path) -> None:
    try:
        from sslkit.report.html import write_report
    except ImportError:
        return
    write_report([run_dir], run_dir / "report.html")
