"""A run directory: its file names, creating and locking it, and reading and writing what it records.

Every module that touches a run directory goes through here, so each file name is spelled once."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sslkit.engine.scalars import RunFiles
from sslkit.errors import UsageError
from sslkit.util import atomic_write_text

CONFIG = "config.json"  # the settings, the schedule, the data sizes, provenance and environment
RESULTS = "results.json"  # the evaluators' metrics and the baselines, written when the run finishes
ENCODER = "encoder.safetensors"  # the trained encoder's weights
METRICS = "metrics.jsonl"  # one line per epoch
STEPS = "steps.csv"  # the per-step scalars
CHECKPOINT = "checkpoint.pt"  # the training state, for --resume
LOCK = "run.lock"  # the pid of the process using the directory
REPORT = "report.html"
EVENTS = "tensorboard"  # TensorBoard event files
PRETRAIN = "pretrain"  # the run directory of the recipe's pretraining stage, inside the run's own
CLASSIFIER = "classifier.safetensors"  # the run's classifier head over the encoder's features
CLASSIFIER_INFO = "classifier.json"  # what the classifier needs: classes, image size, channels, normalization
PREDICTIONS = "predictions.csv"  # the classifier's labels for the pool: path, class, confidence, runner-up
MODEL_ONNX = "model.onnx"  # where `sslkit export` writes the classifier by default
TSNE = "tsne.json"  # the report's cached t-SNE coordinates
BENCH = "bench.json"  # a benchmark cell's wall time
EVAL_DETAILS = "eval-{name}.json"  # an evaluator's details (per-class scores, confusion matrix, chosen C)
CONFUSION = "confusion-{name}.csv"  # an evaluator's confusion matrix (rows: true class, columns: predicted)
PICTURE = "picture-{name}-epoch{epoch}.png"  # a pretext's picture after an epoch (Pretext.pictures)


def eval_details(run_dir: Path, name: str) -> Path:
    return run_dir / EVAL_DETAILS.format(name=name)


def evaluators_with_details(run_dir: Path) -> list[str]:
    """The evaluators that wrote details into ``run_dir``, by name."""
    prefix, suffix = EVAL_DETAILS.split("{name}")
    return [p.name[len(prefix) : -len(suffix)] for p in sorted(run_dir.glob(EVAL_DETAILS.format(name="*")))]


def picture_file(run_dir: Path, name: str, epoch: int) -> Path:
    return run_dir / PICTURE.format(name=name, epoch=epoch)


def latest_pictures(run_dir: Path) -> list[tuple[str, int, Path]]:
    """Each picture the pretext drew, at its latest epoch: (name, epoch, path), by name."""
    prefix, middle = PICTURE.split("{name}")[0], PICTURE.split("{name}")[1].split("{epoch}")[0]
    latest: dict[str, tuple[int, Path]] = {}
    for path in run_dir.glob(PICTURE.format(name="*", epoch="*")):
        name, _, epoch = path.stem.removeprefix(prefix).rpartition(middle)
        if epoch.isdigit() and int(epoch) >= latest.get(name, (-1, path))[0]:
            latest[name] = (int(epoch), path)
    return [(name, epoch, path) for name, (epoch, path) in sorted(latest.items())]


def write_confusion(run_dir: Path, name: str, classes: list[str], matrix: list[list[int]]) -> str:
    """The confusion matrix as CSV (a header of predicted classes, one row per true class); returns its file name."""
    rows = [csv_row(["true\\predicted", *classes])]
    rows += [csv_row([c, *map(str, row)]) for c, row in zip(classes, matrix)]
    path = run_dir / CONFUSION.format(name=name)
    atomic_write_text(path, "\n".join(rows) + "\n")
    return path.name


def run_files(run_dir: Path) -> RunFiles:
    """The files training writes in ``run_dir``."""
    return RunFiles(
        run_dir,
        run_dir / CHECKPOINT,
        run_dir / METRICS,
        run_dir / STEPS,
        run_dir / EVENTS,
        run_dir / CONFIG,
        lambda name, epoch: picture_file(run_dir, name, epoch),
    )


def create(parent: Path, name: str) -> Path:
    """A new directory ``parent/name`` (with ``-2``, ``-3``... when taken); atomic, so two runs started in the same
    second get different directories."""
    parent.mkdir(parents=True, exist_ok=True)
    name = name.replace(":", "_").replace("/", "_")
    for suffix in [""] + [f"-{i}" for i in range(2, 1000)]:
        path = parent / (name + suffix)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UsageError(f"could not create a run directory under {parent}")


def timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """One live process per run directory; a lock left by a dead process is taken over."""
    lock = run_dir / LOCK
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        refuse_if_in_use(run_dir)
        lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def refuse_if_in_use(run_dir: Path) -> None:
    pid = holder(run_dir)
    if pid and pid != os.getpid():
        raise UsageError(f"run directory {run_dir} is in use by process {pid}; wait for it or kill it")


def holder(run_dir: Path) -> int | None:
    """The pid of the live process holding the directory's lock, if any."""
    try:
        pid = int((run_dir / LOCK).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and _alive(pid) else None


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


def status(run_dir: Path) -> str:
    """``finished`` (results written), ``running`` (a live process holds it) or ``killed``."""
    if (run_dir / RESULTS).exists():
        return "finished"
    return "running" if holder(run_dir) else "killed"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when the file is missing or cut short."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: Path, value: dict[str, Any]) -> None:
    # repr for what JSON cannot hold (a plugin option's default that is a Path, say) rather than no record at all
    atomic_write_text(path, json.dumps(value, indent=2, default=repr))


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG
    if not run_dir.is_dir() or not path.exists():
        raise UsageError(
            f"{run_dir} is not an sslkit run directory (no {CONFIG}); pass a directory made by `sslkit run`"
        )
    record = read_json(path)
    if record is None or "config" not in record:
        raise UsageError(f"{path} is not valid JSON (or holds no config); the run directory is damaged")
    return record


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``metrics.jsonl``; a line cut short by a kill is skipped."""
    history = []
    with contextlib.suppress(OSError):
        for line in (run_dir / METRICS).read_text().splitlines():
            with contextlib.suppress(ValueError):
                history.append(json.loads(line))
    return history


def read_steps(run_dir: Path) -> list[dict[str, float]]:
    """The per-step scalars of ``steps.csv`` (empty for runs that did not log them)."""
    try:
        with (run_dir / STEPS).open(newline="") as fh:
            return [
                {k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(fh)
            ]
    except (OSError, ValueError):
        return []


def save_encoder(encoder: torch.nn.Module, run_dir: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    tmp = run_dir / f".{ENCODER}.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, run_dir / ENCODER)


def load_encoder_weights(encoder: torch.nn.Module, run_dir: Path, described: str) -> None:
    """Load ``run_dir``'s saved encoder into ``encoder`` (built as ``described``, for the error message)."""
    from safetensors.torch import load_file

    path = run_dir / ENCODER
    if not path.exists():
        raise UsageError(
            f"{path} does not exist: the run has not finished training; `sslkit run --resume {run_dir}` first"
        )
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise UsageError(f"cannot read {path} ({type(exc).__name__}); the run directory is damaged") from None
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = lines[1] if len(lines) > 1 else lines[0]
        raise UsageError(f"{path} does not fit {described} ({first})") from None


def save_classifier(classifier: Any, record: dict[str, Any], run_dir: Path) -> None:
    """The run's :class:`~sslkit.classifier.Classifier`: its head as safetensors (the encoder is ``ENCODER``) and,
    in ``CLASSIFIER_INFO``, what turns an image file into its input and its outputs into class names."""
    from safetensors.torch import save_file

    head = classifier.head
    state = {"weight": head.weight.detach().cpu().contiguous(), "bias": head.bias.detach().cpu().contiguous()}
    tmp = run_dir / f".{CLASSIFIER}.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, run_dir / CLASSIFIER)
    info = dataclasses.asdict(classifier.info)
    write_json(
        run_dir / CLASSIFIER_INFO,
        {
            **record,
            "encoder_weights": ENCODER,
            "head_weights": CLASSIFIER,
            "mode": classifier.info.mode,
            **info,
        },
    )


def load_classifier_head(run_dir: Path) -> torch.nn.Linear:
    """The saved classifier head; a run without one is one line naming why and what to do."""
    from safetensors.torch import load_file

    path = run_dir / CLASSIFIER
    if not path.exists():
        if status(run_dir) != "finished":
            raise UsageError(
                f"{run_dir} has not finished: no {CLASSIFIER}; finish it with `sslkit run --resume {run_dir}`"
            )
        if read_run_config(run_dir).get("data", {}).get("labeled") == 0:
            raise UsageError(
                f"{run_dir} trained without labels, so it has no classifier; `sslkit suggest {run_dir}` picks the "
                "images to label first, and a run on them has one"
            )
        raise UsageError(
            f"{run_dir} has no classifier (a multi-label run, or one from before classifiers were saved): no "
            f"{CLASSIFIER}; train a new run"
        )
    state = load_file(str(path))
    head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    head.load_state_dict(state)
    return head


def predictions_csv(names: list[str], probs: torch.Tensor, classes: list[str], top_k: int = 2) -> str:
    """CSV text: for each image its name, the predicted class and its probability, then the next ``top_k - 1``
    classes with theirs (``class_2``, ``confidence_2``, ...)."""
    k = min(top_k, probs.shape[1])
    header = ["path", "class", "confidence"]
    for rank in range(2, k + 1):
        header += [f"class_{rank}", f"confidence_{rank}"]
    top = probs.topk(k, dim=1)
    lines = [csv_row(header)]
    for name, values, index in zip(names, top.values.tolist(), top.indices.tolist()):
        cells = [name]
        for value, i in zip(values, index):
            cells += [classes[i], f"{value:.4f}"]
        lines.append(csv_row(cells))
    return "\n".join(lines) + "\n"


def csv_row(cells: list[str]) -> str:
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


def provenance(init: Path) -> dict[str, Any]:
    """Where an ``--init`` run's weights came from: its directory, method and the weights' digest."""
    saved = read_run_config(init)["config"]
    digest = hashlib.sha256((init / ENCODER).read_bytes()).hexdigest()
    return {"run_dir": str(init.resolve()), "pretext": saved["pretext"], "encoder_sha256": digest}


def environment() -> dict[str, Any]:
    """Versions, the git commit and the platform, recorded in ``config.json``."""
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
