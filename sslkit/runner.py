"""``sslkit run`` (and :func:`sslkit.run` from Python) as a straight sequence of stages (see :func:`_run`): the
data and its label budget, the model (started from the recipe's pretraining stage, a run of its own, where it has
one), training, the saved encoder, evaluation with the classifier kept and the pool labeled, and the report. This
module orchestrates; :mod:`sslkit.build` builds and :mod:`sslkit.rundir` reads and writes the run directory."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sslkit import build, rundir
from sslkit.config import RunConfig
from sslkit.engine import distributed as dist
from sslkit.engine.loop import DistributedUnsupported, Diverged, Schedule, Trainer, prepare_model
from sslkit.engine.scalars import write_results
from sslkit.errors import Interrupted, UsageError
from sslkit.evaluate import baselines, evaluate, run_classifier
from sslkit.interfaces import Pretext, Split
from sslkit.registry import Registry, load_registry
from sslkit.report.html import write_run_report
from sslkit.report.tsne import Held
from sslkit.util import atomic_write_text, log


@dataclass
class RunResult:
    run_dir: Path
    results: dict[str, dict[str, float]]
    history: list[dict[str, Any]]
    baselines: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)


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
    chosen = None  # a resumed run's own record: its --select picks are taken, not chosen again
    if resume is not None:
        cfg, chosen = build.saved_config(resume, registry)
        rundir.refuse_if_in_use(resume)
        if rundir.status(resume) == "finished":
            if not (resume / rundir.REPORT).exists():  # killed while writing its page: the results are there
                write_run_report(resume, cfg.tsne_points, quiet)
            log(
                f"{resume} has finished; its results are in {resume / rundir.RESULTS} (`sslkit eval` scores it again)"
            )
            summary = rundir.read_json(resume / rundir.RESULTS) or {}
            return RunResult(
                resume, summary.get("results", {}), rundir.read_history(resume), summary.get("baselines", {})
            )
    if resume is None and cfg.labels == 0:  # the recipe's evaluators are dropped; asked-for ones are refused
        given = [flag for flag, value in (("--eval", cfg.eval), ("--eval-opt", cfg.eval_options)) if value]
        if given:
            raise UsageError(
                f"--labels 0 trains label-free and evaluates nothing: drop {' and '.join(given)}, or give labels"
            )
    cfg = build.resolve(registry, cfg)
    device = dist.local_device(build.resolve_device(cfg.device))
    dist.init(device)
    if cfg.sync_batchnorm and dist.world_size() == 1:
        raise UsageError(
            "--sync-batchnorm syncs batch norm between torchrun's processes and this run is one process: drop it, "
            "or launch with torchrun --nproc-per-node N -m sslkit run ..."
        )
    try:
        result = _run(cfg, resume, registry, quiet, run_dir, device, chosen)
    except BaseException:
        dist.shutdown(wait_for_peers=False)
        raise
    dist.shutdown()
    return result


def _run(
    cfg: RunConfig,
    resume: Path | None,
    registry: Registry,
    quiet: bool,
    run_dir: Path | None,
    device: torch.device,
    chosen: dict[str, Any] | None = None,
    is_stage: bool = False,
) -> RunResult:
    """One run, stage by stage: :func:`settle` the config on the data, build the model, open the directory and
    :func:`write_record`, the recipe's :func:`run_stage`, :func:`pretrain`, save the encoder, :func:`assess`
    (evaluators, the classifier kept, the pool's predictions, baselines), :func:`publish`. ``chosen``: a record
    whose ``--select`` picks this run takes instead of choosing again (a resumed run's own, a stage's parent's).
    A recipe's pretraining stage (``is_stage``) keeps its encoder only: the run after it makes the classifier and
    the predictions."""
    torch.manual_seed(cfg.seed)
    rank0 = dist.rank() == 0
    data = build.load_data(registry, cfg, chosen)
    cfg = settle(registry, cfg, data, resume)
    stage = build.pretrain_stage(registry, cfg)
    pretext = build.build_model(registry, cfg, data.info, Path(cfg.init) if cfg.init else None)
    # bad options have stopped the run by here: nothing written; a resumed run keeps its recorded schedule
    recorded = rundir.read_run_config(resume).get("schedule") if resume is not None else None
    schedule = build.schedule(registry, cfg, recorded)
    if schedule.epochs > 0 and pretext.trains_on == "pool" and len(data.pool) == 0:
        raise UsageError("the unlabeled pool is empty (every training image is labeled); lower --labels")
    run_dir = open_run_dir(cfg, resume, run_dir)
    amp = build.amp_dtype(cfg, device, training=True)
    with rundir.locked(run_dir) if rank0 else contextlib.nullcontext(), resume_hint(run_dir):
        if resume is None and rank0:
            write_record(run_dir, cfg, data, schedule, device, amp, registry)
        if stage is not None:
            stage_dir = run_stage(stage, registry, quiet, run_dir, device, {"data": data.bundle.record})
            pretext = build.build_model(registry, cfg, data.info, stage_dir)
            if rank0:
                record = rundir.read_run_config(run_dir)
                rundir.write_json(run_dir / rundir.CONFIG, {**record, "init": rundir.provenance(stage_dir)})
        prepare_model(pretext, device, compile=cfg.compile)
        if not quiet and rank0:
            log(f"[bold]run[/] {run_dir}  ({describe(cfg, data, schedule, device, amp)})")
        t0 = time.perf_counter()
        history, steps = pretrain(
            pretext, data.pool, data.labeled, schedule, device, amp, cfg.seed, run_dir, resume, quiet
        )
        train_seconds = time.perf_counter() - t0
        if not rank0:  # evaluation and the report happen once, on rank 0
            return RunResult(run_dir, {}, history)
        rundir.save_encoder(pretext.encoder, run_dir)
        t0 = time.perf_counter()
        summary = assess(registry, cfg, pretext, data, device, run_dir, keep_classifier=not is_stage)
        summary.update(train_seconds=round(train_seconds, 2), eval_seconds=round(time.perf_counter() - t0, 2))
        publish(run_dir, cfg, summary, steps, quiet, Held(cfg, data.bundle, pretext.encoder))
    return RunResult(run_dir, summary["results"], history, summary.get("baselines", {}))


@contextlib.contextmanager
def resume_hint(run_dir: Path) -> Iterator[None]:
    """Ctrl-C inside: one line naming the command that continues the run (a stage's: its parent's, which the
    parent's own hint names over it)."""
    try:
        yield
    except KeyboardInterrupt:
        kept = any((d / rundir.CHECKPOINT).exists() for d in (run_dir, run_dir / rundir.PRETRAIN))
        how = "from its last checkpoint" if kept else "from the start (no checkpoint was written yet)"
        raise Interrupted(f"interrupted; `sslkit run --resume {run_dir}` continues {how}") from None


def settle(registry: Registry, cfg: RunConfig, data: build.Data, resume: Path | None) -> RunConfig:
    """The config as the data makes it: the label budget drawn (what the record names), and a label-free method
    when there are no labels yet."""
    if cfg.labels_per_class is None:
        cfg = dataclasses.replace(cfg, labels=data.labels)
    if len(data.labeled) == 0 and resume is None:
        method = cfg.pretext
        cfg = build.label_free(registry, cfg)
        instead = f", instead of {method}" if method != cfg.pretext else ""
        log(f"no labels yet: training {cfg.pretext} (label-free{instead})")
    return cfg


def open_run_dir(cfg: RunConfig, resume: Path | None, run_dir: Path | None) -> Path:
    """The run directory: the resumed one, the one given (``sslkit bench`` names its cells), or a new
    time-stamped one under ``cfg.out``; every rank writes its checkpoints' share to rank 0's."""
    if resume is not None:
        run_dir = resume
    elif run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    elif dist.rank() == 0:
        run_dir = rundir.create(Path(cfg.out), f"{rundir.timestamp()}-{cfg.data}-{cfg.pretext}-{cfg.encoder}")
    return Path(dist.broadcast_object(run_dir))


def write_record(
    run_dir: Path,
    cfg: RunConfig,
    data: build.Data,
    schedule: Schedule,
    device: torch.device,
    amp: torch.dtype | None,
    registry: Registry,
) -> None:
    """``config.json``: the settings (and every option each component was built with, defaults included), the
    schedule, where the data and every label came from, provenance and the environment."""
    record = {
        "config": cfg.to_dict(),
        "options": {
            "data": {**registry.settings("dataset", cfg.data, cfg.data_options), **data.bundle.options},
            "pretext": registry.settings("pretext", cfg.pretext, cfg.pretext_options),
            "encoder": registry.settings("encoder", cfg.encoder, cfg.encoder_options),
            "eval": {
                name: registry.settings("evaluator", name, cfg.eval_options.get(name, {}))
                for name in cfg.eval
            },
        },
        "schedule": schedule.__dict__,
        "data": {
            "train": len(data.bundle.train),
            "test": len(data.bundle.test),
            "labeled": len(data.labeled),
            "pool": len(data.pool),
            "labels_sha256": data.labels_digest,
            "classes": data.info.classes,
            **data.bundle.record,
        },
        "info": dataclasses.asdict(data.info),
        "device": str(device),
        "training_precision": str(amp or torch.float32).removeprefix("torch."),
        "init": rundir.provenance(Path(cfg.init)) if cfg.init else None,
        **rundir.environment(),
    }
    rundir.write_json(run_dir / rundir.CONFIG, record)


def describe(
    cfg: RunConfig, data: build.Data, schedule: Schedule, device: torch.device, amp: torch.dtype | None
) -> str:
    """The run's first line: the data as the run sees it and what it chose."""
    info = data.info
    flips = "" if info.flips else ", no flips"
    return (
        f"{info.name}: {len(data.labeled)} labeled, {len(data.pool)} unlabeled, {len(data.bundle.test) or 'no'} "
        f"test, {info.image_size}x{info.image_size} {info.mode}{flips}; {cfg.pretext} on {cfg.encoder}, "
        f"{schedule.epochs} epoch(s), {device}{', bfloat16 steps' if amp else ''}"
    )


def assess(
    registry: Registry,
    cfg: RunConfig,
    pretext: Pretext,
    data: build.Data,
    device: torch.device,
    run_dir: Path,
    keep_classifier: bool = True,
) -> dict[str, Any]:
    """After training: the evaluators on the test split (none without one, or without labels), the run's
    classifier kept with the pool's predictions (``keep_classifier``), and the baselines. Returns what
    ``results.json`` records."""
    labeled, pool, info = data.labeled, data.pool, data.info
    has_test = len(data.bundle.test) > 0 and len(labeled) > 0
    if not has_test and len(labeled) and keep_classifier:
        log("[yellow]no test split[/]: the run trains and predicts, but measures no test accuracy")
    heads: dict[str, torch.nn.Module] = {}
    results = (
        evaluate(registry, cfg, pretext, pretext.encoder, data, device, run_dir, heads=heads)
        if has_test and cfg.eval
        else {}
    )
    summary: dict[str, Any] = {"results": results, "labeled": len(labeled)}
    if len(labeled) == 0:
        log(f"next: sslkit suggest {run_dir} --n 20 --out to-label.csv   (which images to label first)")
    elif keep_classifier and not info.multilabel:
        classifier, summary["classifier"] = run_classifier(pretext, data, device, cfg.seed, heads)
        rundir.save_classifier(classifier, summary["classifier"], run_dir)
        if len(pool):
            text = rundir.predictions_csv(data.pool_names, classifier.probabilities(pool), info.classes)
            atomic_write_text(run_dir / rundir.PREDICTIONS, text)
            log(f"predictions: {run_dir / rundir.PREDICTIONS} (each of the {len(pool):,} pool images' class)")
        if not has_test:  # no results table follows: the run's end says what it holds instead
            estimate = summary["classifier"].get("estimate")
            if estimate:
                log(f"classifier: {estimate['cv_accuracy']:.4f}, {estimate['what']}")
            log(
                f"next: sslkit predict {run_dir} FILES --out labels.csv   |   sslkit suggest {run_dir} --n 20   "
                f"(which images to label next)   |   sslkit export {run_dir}"
            )
    if cfg.baselines and has_test:
        summary["baselines"] = baselines(registry, cfg, data, device)
    return summary


def publish(
    run_dir: Path, cfg: RunConfig, summary: dict[str, Any], steps: int, quiet: bool, held: Held
) -> None:
    """``results.json``, the final scalars for TensorBoard (and W&B), and ``report.html`` (from what the run
    holds: nothing is read back from disk but the records the report shows)."""
    rundir.write_json(run_dir / rundir.RESULTS, summary)
    scores = {"eval": summary["results"]}
    scores.update({f"baseline_{k}": v for k, v in summary.get("baselines", {}).items()})
    write_results(rundir.run_files(run_dir), steps, scores, cfg.wandb)
    write_run_report(run_dir, cfg.tsne_points, quiet, held)


def run_stage(
    stage: RunConfig,
    registry: Registry,
    quiet: bool,
    run_dir: Path,
    device: torch.device,
    chosen: dict[str, Any],
) -> Path:
    """Run (or resume, or find finished) the recipe's pretraining stage in ``run_dir/pretrain``, on the labels
    ``chosen`` records (the run's own); its directory."""
    stage_dir = run_dir / rundir.PRETRAIN
    if rundir.status(stage_dir) != "finished":
        if not quiet:
            log(f"[bold]pretraining stage[/]: {stage.pretext}, {stage.epochs} epoch(s), in {stage_dir}")
        resume = stage_dir if (stage_dir / rundir.CONFIG).exists() else None
        _run(stage, resume, registry, quiet, stage_dir, device, chosen, is_stage=True)
    return stage_dir


def pretrain(
    pretext: Pretext,
    pool: torch.Tensor,
    labeled: Split,
    schedule: Schedule,
    device: torch.device,
    amp: torch.dtype | None,
    seed: int,
    run_dir: Path,
    resume: Path | None,
    quiet: bool,
) -> tuple[list[dict[str, Any]], int]:
    """Pretrain (or continue a killed pretraining); returns this session's epoch records and the steps taken in
    all. ``epochs = 0`` evaluates the encoder as built (e.g. pretrained timm weights)."""
    if schedule.epochs == 0:
        return [], 0
    on_device = pool.to(device) if device.type == "cuda" else pool
    labeled = Split(labeled.images.to(device), labeled.labels.to(device))
    try:
        files = rundir.run_files(run_dir)
        trainer = Trainer(pretext, on_device, labeled, schedule, device, seed, files, not quiet, amp)
    except DistributedUnsupported as exc:
        raise UsageError(str(exc)) from None
    if resume is not None and (run_dir / rundir.CHECKPOINT).exists():
        trainer.resume()
        log(f"resumed at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
    elif resume is not None:  # killed before any checkpoint: from the start, minus the lines logged then
        trainer.truncate_metrics()
    try:
        return trainer.fit(), trainer.global_step
    except Diverged as exc:
        kept = (
            f"the last good checkpoint is in {run_dir}"
            if (run_dir / rundir.CHECKPOINT).exists()
            else "no checkpoint had been written yet"
        )
        also = "" if schedule.on_nan == "lower-lr" else ", or pass --on-nan lower-lr"
        raise UsageError(f"{exc}; {kept}. Start again with a lower --lr{also}") from None


def run_settings(resume: str | Path | None = None, quiet: bool = False, **settings: Any) -> RunResult:
    """``sslkit run`` from Python, with the same settings under their config-file names (the flags with
    underscores): ``sslkit.run(pretext="fixmatch", data="mnist", labels=100, eval=["head", "knn"])``."""
    if resume is not None:
        if settings:
            raise UsageError(
                f"resume continues a run with its own settings; drop {', '.join(sorted(settings))}"
            )
        return run(RunConfig(), resume=Path(resume), quiet=quiet)
    return run(RunConfig.from_dict(settings, source="sslkit.run()"), quiet=quiet)
