"""Build what a run's config describes, the same way for ``run``, ``eval``, ``report`` and the Python API:
device -> data and label budget -> encoder (fresh, or a finished run's trained one) -> pretext -> schedule."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslkit import rundir
from sslkit.classifier import Classifier
from sslkit.config import RunConfig, labels_spec
from sslkit.data import LabelBudget, default_data_root, split_budget
from sslkit.engine.loop import Schedule
from sslkit.errors import UsageError
from sslkit.interfaces import DataInfo, DatasetBundle, Pretext, Split
from sslkit.registry import Registry, load_registry
from sslkit.util import log

DEFAULT_RECIPE = {"epochs": 10, "batch_size": 256, "lr": 0.05, "weight_decay": 5e-4, "optimizer": "sgd"}
DEFAULT_EVAL = ["linear"]  # evaluators when neither --eval nor the pretext's recipe names them


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


def cpu_has_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def amp_dtype(cfg: RunConfig, device: torch.device, training: bool = False) -> torch.dtype | None:
    """The autocast precision unless ``--no-amp``: bfloat16 on CUDA; on a CPU with native bfloat16, for the
    training steps only (benchmarks/model_step.py measures the gain; evaluation stays in float32 there, so
    features computed later from the saved encoder match the run's own)."""
    if not cfg.amp:
        return None
    if device.type == "cuda" or (device.type == "cpu" and training and cpu_has_bfloat16()):
        return torch.bfloat16
    return None


def resolve(registry: Registry, cfg: RunConfig) -> RunConfig:
    """Fill in the encoder and check every name and option before anything is loaded or written; the returned
    config holds the option values the factories will receive and the evaluators (what ``config.json`` records).

    The encoder, when none was given, is the ``--init`` run's, else the pretext's recipe for the data (see
    :func:`recipe`), else convnet; given options override the recipe's. The evaluators, when ``--eval`` was not
    given, are the recipe's ``eval``, else linear."""
    registry.get("pretext", cfg.pretext)
    if cfg.init is not None:
        # recorded absolute: the run resumes from any directory
        cfg = dataclasses.replace(cfg, init=str(Path(cfg.init).resolve()))
        saved = rundir.read_run_config(Path(cfg.init))["config"]
        if cfg.encoder not in (None, saved["encoder"]):
            raise UsageError(
                f"--init {cfg.init} holds a {saved['encoder']!r} encoder, not {cfg.encoder!r}; "
                f"drop --encoder or init from a run of {cfg.encoder!r}"
            )
        cfg = dataclasses.replace(
            cfg, encoder=saved["encoder"], encoder_options={**saved["encoder_options"], **cfg.encoder_options}
        )
    elif cfg.encoder is None:
        chosen = recipe(registry, cfg)
        options = {**chosen.get("encoder_options", {}), **cfg.encoder_options}
        cfg = dataclasses.replace(cfg, encoder=chosen.get("encoder", "convnet"), encoder_options=options)
    chosen = recipe(registry, cfg)
    cfg = dataclasses.replace(
        cfg,
        pretext_options={**chosen.get("pretext_options", {}), **cfg.pretext_options},
        eval=list(chosen.get("eval", DEFAULT_EVAL)) if cfg.eval is None else cfg.eval,
    )
    if cfg.wandb and importlib.util.find_spec("wandb") is None:
        raise UsageError(
            "--wandb logs to Weights & Biases, which is not installed: `pip install wandb`, or drop --wandb"
        )
    assert cfg.encoder is not None and cfg.eval is not None
    if cfg.select_from and not cfg.select:
        raise UsageError(
            "--select-from continues a selection: give --select STRATEGY too (e.g. --select auto)"
        )
    unused = set(cfg.eval_options) - set(cfg.eval)
    if unused:
        raise UsageError(f"options given for evaluator(s) {', '.join(sorted(unused))} that are not in --eval")
    return dataclasses.replace(
        cfg,
        data_options=registry.check_options("dataset", cfg.data, cfg.data_options),
        encoder_options=registry.check_options("encoder", cfg.encoder, cfg.encoder_options),
        pretext_options=registry.check_options("pretext", cfg.pretext, cfg.pretext_options),
        eval_options={
            name: registry.check_options("evaluator", name, cfg.eval_options.get(name, {}))
            for name in cfg.eval
        },
    )


@dataclass
class Data:
    """A run's data: the dataset, its label budget, the labeled split and the unlabeled pool.
    ``labels``: the budget as recorded (a count or "all"); ``pool_names`` / ``labeled_names``: where each image
    came from (its file, else ``train[i]`` / ``unlabeled[i]``)."""

    bundle: DatasetBundle
    labeled: Split
    pool: torch.Tensor
    labels_digest: str
    labels: int | str
    pool_names: list[str]
    labeled_names: list[str]

    @property
    def info(self) -> DataInfo:
        return self.bundle.info


def load_data(registry: Registry, cfg: RunConfig, record: dict[str, Any] | None = None) -> Data:
    """The run's data. ``record``: a saved run's ``config.json``, whose recorded picks (``--select``) are taken
    as they are instead of being chosen again (the same picks: the selection is deterministic, but takes seconds),
    and whose labeled images and class names must be the ones rebuilt (resume, eval, suggest and the report read
    the data again)."""
    root = Path(cfg.data_root).expanduser() if cfg.data_root else default_data_root()
    bundle = registry.build("dataset", cfg.data, root, cfg.download, options=cfg.data_options)
    train = bundle.train
    count = labels_spec(cfg.labels, bundle.labels_given)
    if count is not None and bundle.labels_given and count > len(train):
        raise UsageError(
            f"--labels {count} asks for more than the {len(train)} labeled images the data brings"
        )
    recorded = (record or {}).get("data", {})
    if cfg.select is None:
        budget = split_budget(train.labels, count, cfg.seed, cfg.labels_per_class, bundle.info.classes)
    elif "selected" in recorded:
        bundle.record.update({key: recorded[key] for key in SELECTION_RECORD if key in recorded})
        budget = LabelBudget.of(torch.tensor(recorded["selected"]), len(train))
    else:
        budget = selected_budget(registry, cfg, bundle, count)
    pool = train.images[budget.unlabeled]
    train_names = bundle.train_files or [f"train[{i}]" for i in range(len(train))]
    names = [train_names[i] for i in budget.unlabeled.tolist()]
    labeled_names = [train_names[i] for i in budget.labeled.tolist()]
    if bundle.unlabeled is not None:
        pool = torch.cat([pool, bundle.unlabeled])
        names += bundle.unlabeled_files or [f"unlabeled[{i}]" for i in range(len(bundle.unlabeled))]
    if cfg.pool_size is not None and cfg.pool_size < len(pool):  # a seeded random subset, for quick runs
        keep = torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.pool_size]
        keep = keep.sort().values
        pool, names = pool[keep], [names[i] for i in keep.tolist()]
    labels = "all" if count is None else count
    rebuilt = {"labels_sha256": budget.digest, "classes": list(bundle.info.classes)}
    if any(recorded.get(key) not in (None, value) for key, value in rebuilt.items()):
        source = recorded.get("labels_from", "the data set")
        raise UsageError(
            f"the labels rebuilt for this run differ from the ones it was trained on: {source} changed since; "
            "restore it, or train a new run on the new labels"
        )
    return Data(bundle, train.subset(budget.labeled), pool, budget.digest, labels, names, labeled_names)


# what --select adds to config.json's "data" (selected_budget), carried over where recorded picks are reused
SELECTION_RECORD = ("selected_by", "classes_seen", "selected", "selected_rounds")


def selected_budget(
    registry: Registry, cfg: RunConfig, bundle: DatasetBundle, count: int | None
) -> LabelBudget:
    """``--select``: the selector picks ``count`` training images (it never sees a label), then exactly those
    images' labels are revealed; the strategy and the picks go into the run's record.

    A first round chooses from the pixels alone, or beside the encoder features of the ``--select-from`` run
    (e.g. a label-free one). When that run itself selected, this run is its next round: its picks stay labeled
    and the rest of ``count`` is chosen in its features, its classifier's probabilities given to the selector
    (``auto`` weighs by them from 10 labels a class), as ``sslkit suggest`` does for a person."""
    from sslkit.labeling import choose_in_view

    if bundle.labels_given or cfg.labels_per_class is not None or not count:
        raise UsageError(
            "--select simulates choosing which images to label on a labeled data set: give --labels N (N >= 1) "
            f"on a data set whose labels can be revealed, not {cfg.data!r} with its own labeled split"
        )
    images = bundle.train.images
    earlier, rounds = torch.zeros(0, dtype=torch.int64), []
    source = cfg.select_from
    source_record = rundir.read_run_config(Path(source)) if source else {}
    before = source_record.get("data", {})
    if source and (source_record["config"]["data"], before.get("train")) != (cfg.data, len(images)):
        raise UsageError(
            f"--select-from {source} trained on {source_record['config']['data']} ({before.get('train', 0):,} "
            f"images), this run selects in {cfg.data} ({len(images):,}): give a run on the same data"
        )
    if "selected" in before:
        earlier = torch.tensor(before["selected"])
        rounds = before.get("selected_rounds", [len(earlier)])
        if len(earlier) >= count:
            raise UsageError(
                f"--select-from {source} chose {len(earlier)} images; a next round needs more labels (--labels "
                f"above {len(earlier)}), here {count}"
            )
        log(f"round {len(rounds) + 1}: the {len(earlier)} images {source} labeled stay")
    seen_by = f"the pixels and {source}'s features" if source else "the pool's pixels"
    log(f"selecting {count - len(earlier)} images to label with {cfg.select} ({seen_by}; no label is read)")
    features = probabilities = None
    if source:
        features, probabilities = run_view(registry, Path(source), images, resolve_device(cfg.device))
    name, new = choose_in_view(
        registry,
        cfg.select,
        images,
        features,
        probabilities,
        count - len(earlier),
        earlier,
        cfg.seed,
        bundle.info.num_classes,
    )
    picks = torch.cat([earlier, new]).sort().values
    seen = len(torch.unique(bundle.train.labels[picks])) if bundle.train.labels.ndim == 1 else None
    bundle.record.update(
        selected_by=name, classes_seen=seen, selected=picks.tolist(), selected_rounds=[*rounds, len(new)]
    )
    if seen is not None:
        log(f"the {count} picks' labels, revealed: {seen} of {bundle.info.num_classes} classes")
    return LabelBudget.of(picks, len(bundle.train))


def run_view(
    registry: Registry, run_dir: Path, images: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A finished run's view of uint8 ``images``: its encoder's features (float32, CPU) and its classifier's class
    probabilities (None where the run kept no classifier)."""
    from sslkit.features import extract_features

    cfg, record = saved_config(run_dir, registry)
    info = saved_info(registry, cfg, record)
    encoder = trained_encoder(registry, cfg, info, run_dir).to(device)
    features = extract_features(encoder, images, info, device)
    if not (run_dir / rundir.CLASSIFIER).exists():
        return features, None
    with torch.no_grad():
        return features, rundir.load_classifier_head(run_dir)(features).float().softmax(1)


def build_encoder(registry: Registry, cfg: RunConfig, info: DataInfo, for_weights: bool = False) -> nn.Module:
    """The run's encoder, seeded; ``for_weights``: only to receive saved weights, so with the encoder's declared
    ``offline_options`` (e.g. no pretrained download)."""
    assert cfg.encoder is not None, "resolve(cfg) first"
    options = dict(cfg.encoder_options)
    if for_weights:
        options.update(registry.get("encoder", cfg.encoder).component.offline_options)
    torch.manual_seed(cfg.seed)
    return registry.build("encoder", cfg.encoder, info.in_chans, info.image_size, options=options)


def build_pretext(registry: Registry, cfg: RunConfig, encoder: nn.Module, info: DataInfo) -> Pretext:
    return registry.build("pretext", cfg.pretext, encoder, info, options=cfg.pretext_options)


def build_model(registry: Registry, cfg: RunConfig, info: DataInfo, init: Path | None) -> Pretext:
    """The run's pretext around its encoder, that encoder started from ``init``'s saved one where given."""
    encoder = build_encoder(registry, cfg, info)
    if init is not None:
        described = f"this run's encoder ({cfg.encoder} on {info.in_chans}-channel images)"
        rundir.load_encoder_weights(encoder, init, described)
    return build_pretext(registry, cfg, encoder, info)


def recipe(registry: Registry, cfg: RunConfig) -> dict[str, Any]:
    """The pretext's recipe for ``cfg``: its ``defaults`` (epochs, batch_size, lr, weight_decay, optimizer,
    warmup_epochs; encoder, encoder_options, pretext_options; pretrain; eval), overridden by
    ``defaults["data"][cfg.data]`` when the pretext declares a recipe of its own for that dataset and the run uses
    that recipe's encoder (the one it names, or none given)."""
    defaults = dict(getattr(registry.get("pretext", cfg.pretext).component.factory, "defaults", {}))
    special = defaults.pop("data", {}).get(cfg.data)
    if special and cfg.encoder in (None, special.get("encoder", defaults.get("encoder"))):
        defaults.update(special)
    return defaults


def pretrain_stage(registry: Registry, cfg: RunConfig) -> RunConfig | None:
    """The run that trains ``cfg``'s encoder first when its recipe names a pretraining stage
    (``defaults["pretrain"] = {"pretext": ..., "epochs": ...}``): the same data, label draw, seed and encoder, that
    pretext's own recipe, no evaluators. None without a stage, with ``--init`` (the start is given) or with
    ``--no-pretrain``."""
    stage = recipe(registry, cfg).get("pretrain")
    if stage is None or cfg.init is not None or not cfg.pretrain:
        return None
    stage_cfg = dataclasses.replace(
        cfg,
        pretext=stage["pretext"],
        epochs=stage["epochs"],
        init=None,
        **dict.fromkeys(("batch_size", "lr", "weight_decay", "optimizer", "wandb")),
        pretext_options={},
        eval=[],
        eval_options={},
        baselines=False,
        tsne_points=0,
    )
    return resolve(registry, stage_cfg)


def label_free(registry: Registry, cfg: RunConfig) -> RunConfig:
    """``cfg`` for a run with no labels yet: a method that needs labels (semi-supervised, or trained on the
    labeled images alone) is replaced by its recipe's label-free one (``defaults["without_labels"] =
    {"pretext": ..., "epochs": ...}``; rotation when it names none), on the same encoder, so that a later run
    can start from it (``--init``); no evaluators, no baselines."""
    factory = registry.get("pretext", cfg.pretext).component.factory
    changes: dict[str, Any] = {"eval": [], "eval_options": {}, "baselines": False, "tsne_points": 0}
    if getattr(factory, "uses_labels", False) or getattr(factory, "trains_on", "pool") == "labeled":
        stage = recipe(registry, cfg).get("without_labels", {"pretext": "rotation"})
        epochs = cfg.epochs if cfg.epochs is not None else stage.get("epochs")
        changes.update(pretext=stage["pretext"], epochs=epochs, pretext_options={}, pretrain=False)
    return resolve(registry, dataclasses.replace(cfg, **changes))


def schedule(registry: Registry, cfg: RunConfig, recorded: dict[str, Any] | None = None) -> Schedule:
    """The training schedule: the core's defaults, then the pretext's recipe, then what the user set. A run that
    resumes passes its record's schedule (``recorded``) for the recipe: what the recipe gave then stays, warmup
    included, whatever the recipe says now."""
    merged = {**DEFAULT_RECIPE, **(recipe(registry, cfg) if recorded is None else recorded)}
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
        wandb=cfg.wandb,
    )


def saved_config(run_dir: Path, registry: Registry) -> tuple[RunConfig, dict[str, Any]]:
    """A run directory's config (as the run resolved it) and its whole ``config.json`` record.

    What the run took from its recipe is taken from the record instead (every pretext option, defaults included;
    its schedule: :func:`schedule` given the record's): a recipe that changed since (fixmatch's Fashion-MNIST
    threshold, 2026-12-06) must not change a run that resumes or is read again. So are the data options, as the
    dataset resolved them (a folder given relative to the directory the run started in). A recorded default whose
    option the plugin has since dropped is left out (what the run was given is still checked)."""
    record = rundir.read_run_config(run_dir)
    settings = dict(record["config"])
    for kind, key in (("dataset", "data"), ("pretext", "pretext")):
        if key in record.get("options", {}):
            known = registry.get(kind, settings[key]).options
            kept = {name: value for name, value in record["options"][key].items() if name in known}
            settings[f"{key}_options"] = {**settings.get(f"{key}_options", {}), **kept}
    if settings.get("labels", 0) is None and settings.get("labels_per_class") is None:
        settings["labels"] = (
            "all"  # runs before the default depended on the data recorded every label as null
        )
    return RunConfig.from_dict(settings, source=str(run_dir / rundir.CONFIG)), record


def saved_info(registry: Registry, cfg: RunConfig, record: dict[str, Any]) -> DataInfo:
    """The run's :class:`DataInfo`, from ``config.json`` (runs before it was recorded: from the dataset)."""
    if "info" in record:
        return DataInfo(
            **{**record["info"], "mean": tuple(record["info"]["mean"]), "std": tuple(record["info"]["std"])}
        )
    return load_data(registry, dataclasses.replace(cfg, download=False), record).info


def trained_encoder(registry: Registry, cfg: RunConfig, info: DataInfo, run_dir: Path) -> nn.Module:
    """A finished run's encoder, rebuilt from the registry and loaded from its safetensors weights, in eval mode,
    with channels_last weights as in training (the MNIST convnet's features: 1.9x the images/s on a CPU)."""
    encoder = build_encoder(registry, cfg, info, for_weights=True)
    rundir.load_encoder_weights(
        encoder, run_dir, f"encoder {cfg.encoder!r} as configured; was the plugin changed?"
    )
    return encoder.to(memory_format=torch.channels_last).eval()


def trained_pretext(registry: Registry, cfg: RunConfig, info: DataInfo, run_dir: Path) -> Pretext | None:
    """A finished run's whole pretext (its own classifier, for the ``head`` evaluator), rebuilt from the registry
    and loaded from the last checkpoint, in eval mode; None when the run kept no checkpoint."""
    from sslkit.engine.checkpoint import load_checkpoint

    path = run_dir / rundir.CHECKPOINT
    if not path.exists():
        return None
    pretext = build_model(registry, cfg, info, None)
    pretext.load_state_dict(load_checkpoint(path, map_location="cpu")["pretext"])
    return pretext.eval()


@dataclass
class TrainedRun:
    """A finished run's encoder and classifier with what they need: ``features(images)`` and ``predict(images)``
    apply the run's own normalization; ``predict_files(paths)`` also its decoding (mode, resize)."""

    encoder: nn.Module
    info: DataInfo
    config: RunConfig
    run_dir: Path
    _classifier: Classifier | None = None

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.feature_dim)

    @property
    def classes(self) -> list[str]:
        return list(self.info.classes)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters(), torch.empty(0)).device

    @property
    def classifier(self) -> Classifier:
        """The run's classifier (uint8 images in, logits out), loaded on first use."""
        if self._classifier is None:
            head = rundir.load_classifier_head(self.run_dir).to(self.device)
            self._classifier = Classifier(self.encoder, head, self.info).eval()
        return self._classifier

    def predict(self, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Class probabilities ``(N, classes)`` (float32, CPU) of uint8 ``(N, C, H, W)`` images at the run's size."""
        expected = (self.info.in_chans, self.info.image_size, self.info.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise UsageError(
                f"predict takes images (N, {', '.join(map(str, expected))}), got {tuple(images.shape)}"
            )
        return self.classifier.probabilities(images, batch_size)

    def predict_files(
        self, paths: list[Path], batch_size: int | None = None
    ) -> tuple[list[Path], torch.Tensor, list[Path]]:
        """Decode ``paths`` as the run prepared its images, then :meth:`predict`: (the files read, their class
        probabilities, the files that could not be decoded)."""
        from sslkit.data.images import load_images

        size, mode = self.info.image_size, self.info.mode
        images, skipped = load_images(paths, size, mode, None, "images", skip_unreadable=True)
        unread = set(skipped)
        return [p for p in paths if p not in unread], self.predict(images, batch_size), skipped

    def features(self, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Features of ``images`` (uint8 ``(N, C, H, W)``, or float in [0, 1]) exactly as the run's evaluators
        computed them: float32, on the CPU."""
        from sslkit.features import extract_features

        return extract_features(self.encoder, images, self.info, self.device, batch_size)


def load_run(run_dir: str | Path, device: str = "cpu") -> TrainedRun:
    """Load a finished run: ``sslkit.load_run("runs/...").features(images)``."""
    run_dir = Path(run_dir)
    registry = load_registry()
    cfg, record = saved_config(run_dir, registry)
    info = saved_info(registry, cfg, record)
    encoder = trained_encoder(registry, cfg, info, run_dir).to(resolve_device(device))
    return TrainedRun(encoder, info, cfg, run_dir)


def load_encoder(run_dir: str | Path, device: str = "cpu") -> nn.Module:
    """A finished run's trained encoder (weights from safetensors, never unpickled), in eval mode, with its
    ``feature_dim``. It expects images normalized as the run did: use :func:`load_run` for features."""
    return load_run(run_dir, device).encoder
