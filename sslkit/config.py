"""A run's configuration: defaults, then a TOML file, then command-line flags; validated in one place."""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslkit.errors import UsageError
from sslkit.interfaces import OPTIMIZERS
from sslkit.rundir import CONFIG

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class RunConfig:
    pretext: str = "fixmatch"
    encoder: str | None = None  # None: the --init run's, else the pretext's recipe, else convnet
    data: str = "digits"
    labels: int | str | None = (
        None  # a count, "all", or None: 100, or every label a folder brings (see labels_spec)
    )
    labels_per_class: int | None = None
    select: str | None = (
        None  # a selector picks the --labels images from the pixels, labels unseen (benchmarks)
    )
    select_from: str | None = (
        None  # the previous round's run: its picks stay, its model helps choose the rest
    )
    init: str | None = None  # a run directory whose saved encoder starts this run
    pretrain: bool = True  # run the recipe's pretraining stage first, where it has one (not with --init)
    pool_size: int | None = None  # pretrain on a seeded random subset of this many unlabeled images
    epochs: int | None = None  # None: the pretext's recipe
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    download: bool = True
    eval: list[str] | None = None  # None: the pretext's recipe (``eval``), else linear
    baselines: bool = True  # also score frozen-feature evaluators on a random-init encoder and raw pixels
    out: str = "runs"
    amp: bool = True  # bfloat16 autocast on CUDA, and for training on CPUs with native bfloat16
    compile: bool = False
    sync_batchnorm: bool = False  # under torchrun on GPUs: batch-norm statistics over all ranks
    checkpoint_every: float = 300.0  # seconds between mid-epoch checkpoints (0: only at epoch ends)
    on_nan: str = "stop"  # or "lower-lr": halve the learning rate and resume from the last checkpoint
    tsne_points: int = 2000  # test images in the report's t-SNE map (0 skips it)
    wandb: str | None = None  # a Weights & Biases project to log to as well (needs the wandb package)
    pretext_options: dict[str, Any] = field(default_factory=dict)
    encoder_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    eval_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> RunConfig:
        cfg = cls()
        cfg.update(values, source)
        return cfg

    def update(self, values: dict[str, Any], source: str) -> None:
        names = {f.name: f for f in dataclasses.fields(self)}
        values = {k.replace("-", "_"): v for k, v in values.items()}
        if values.get("labels") is not None:
            values["labels"] = parse_labels(values["labels"])
        if values.get("labels_per_class") is not None and "labels" not in values:
            values["labels"] = None  # a per-class budget replaces the default --labels
        for key, value in values.items():
            if key not in names:
                hint = difflib.get_close_matches(key, names, n=1)
                mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise UsageError(
                    f"{source}: unknown setting {key!r}{mean}; known settings: {', '.join(sorted(names))}"
                )
            setattr(self, key, _check_type(key, value, names[key].type, source))
        self.validate()

    def validate(self) -> None:
        def positive(name: str, value: float | None) -> None:
            if value is not None and value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")

        for name in ("labels_per_class", "pool_size", "batch_size", "lr"):
            positive(name, getattr(self, name))
        if self.epochs is not None and self.epochs < 0:
            raise UsageError(
                f"--epochs must be >= 0 (0: evaluate the encoder as built, after a recipe's pretraining stage "
                f"unless --no-pretrain), got {self.epochs}"
            )
        if self.weight_decay is not None and self.weight_decay < 0:
            raise UsageError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.tsne_points < 0:
            raise UsageError(f"tsne_points must be >= 0 (0 skips t-SNE), got {self.tsne_points}")
        if self.checkpoint_every < 0:
            raise UsageError(f"--checkpoint-every must be >= 0 seconds, got {self.checkpoint_every}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise UsageError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.on_nan not in ON_NAN:
            raise UsageError(f"--on-nan must be one of {', '.join(ON_NAN)}, got {self.on_nan!r}")
        if self.labels not in (None, "all") and self.labels_per_class is not None:
            raise UsageError("give either --labels or --labels-per-class, not both")


ON_NAN = ("stop", "lower-lr")  # when the loss diverges: stop, or halve the learning rate and resume
DEFAULT_LABELS = 100  # labels drawn from a fully labeled data set when --labels is not given


def names_list(value: Any) -> Any:
    """``"a, b"`` -> ``["a", "b"]`` (the comma-separated lists of the command line: ``--eval``, ``--only``); any
    other value as it is."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


def parse_labels(value: Any) -> int | str:
    """A label budget from the command line or a file: a count or ``"all"`` (the one parser); 0 trains without
    labels (a label-free method, then ``sslkit suggest`` picks the images to label)."""
    if value == "all":
        return "all"
    try:
        count = int(value) if isinstance(value, str) or type(value) is int else None
    except ValueError:
        count = None
    if count is None or count < 0:
        raise UsageError(f"--labels must be a count (0 for none yet) or 'all', got {value!r}")
    return count


def labels_spec(labels: int | str | None, labels_given: bool) -> int | None:
    """The count of labels to draw (None: every label): ``--labels`` as given, else every label of a data set
    that brings its own labeled/unlabeled split (a person's folder), else :data:`DEFAULT_LABELS`."""
    if labels == "all" or (labels is None and labels_given):
        return None
    return DEFAULT_LABELS if labels is None else int(labels)


def _check_type(key: str, value: Any, annotation: str, source: str) -> Any:
    kind = str(annotation)
    where = f"{source}: {key}"
    if key == "labels":
        return value  # parse_labels checked it
    if kind.startswith("dict"):
        if not isinstance(value, dict):
            raise UsageError(f"{where} must be a table of options, got {value!r}")
        return value
    if value is None and "None" in kind:
        return None
    if kind.startswith("list"):
        value = names_list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where} must be a list of names, got {value!r}")
        return value
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            raise UsageError(f"{where} must be true or false, got {value!r}")
        return value
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where} must be an integer, got {value!r}")
        return value
    if kind.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{where} must be a number, got {value!r}")
        return float(value)
    if kind.startswith("str"):
        if not isinstance(value, str):
            raise UsageError(f"{where} must be a string, got {value!r}")
        return value
    raise AssertionError(f"unhandled setting type {kind}")


def read_settings(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML file, or from a run's ``config.json`` (to rerun or vary a recorded run)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG
    if path.suffix == ".json":
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"config file {path} does not exist; check the path given to --config") from None
        except ValueError as exc:
            raise UsageError(f"config file {path} is not valid JSON ({exc}); fix the file") from None
        return dict(record.get("config", record)) if isinstance(record, dict) else {}
    return read_toml(path)


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"file {path} does not exist; check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML ({exc}); fix the file") from None


def parse_value(text: str) -> Any:
    """A command-line option value: a TOML literal (``0.5``, ``true``, ``[1, 2]``) or else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: list[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out
