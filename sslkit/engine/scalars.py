"""Per-step and per-epoch scalars of a run, as the ecosystem reads them: TensorBoard event files
(``tensorboard --logdir runs``) and a CSV of the per-step values, both in the run directory.

TensorBoard's writer is ``torch.utils.tensorboard`` (PyTorch's own), which needs the ``tensorboard`` package; that
package also brings the ``tensorboard`` viewer, so the command above works right after ``pip install sslkit``."""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunFiles:
    """Where training writes inside a run directory (:func:`sslkit.rundir.run_files` names them)."""

    folder: Path  # the run directory
    checkpoint: Path
    metrics: Path  # one JSON line per epoch
    steps: Path  # the per-step scalars, CSV
    events: Path  # TensorBoard event files
    config: Path  # the run's record, read for the W&B run's config
    picture: Callable[[str, int], Path]  # (name, epoch) -> where a pretext's picture goes


class ScalarLog:
    """Writes ``steps.csv`` and the event files. On resume at ``step``, rows and events after it (written before a
    kill, about to be redone) are dropped, so the logs read as if the run had never stopped."""

    def __init__(self, files: RunFiles, step: int = 0, wandb_project: str | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.wandb = _wandb_run(files, wandb_project)
        self.events = SummaryWriter(str(files.events), purge_step=step + 1 if step else None)
        self.path = files.steps
        self.columns: list[str] | None = None
        if step and self.path.exists():
            with self.path.open(newline="") as fh:
                rows = list(csv.reader(fh))
            if rows:
                self.columns = rows[0]
                kept = [r for r in rows[1:] if r and int(r[0]) <= step]
                with self.path.open("w", newline="") as fh:
                    csv.writer(fh).writerows([self.columns, *kept])
        elif self.path.exists():
            self.path.unlink()
        self.file = self.path.open("a", newline="")
        self.writer = csv.writer(self.file)

    def step(self, step: int, values: dict[str, float]) -> None:
        if self.columns is None:
            self.columns = ["step", *values]
            self.writer.writerow(self.columns)
        self.writer.writerow([step, *(f"{values.get(c, float('nan')):.6g}" for c in self.columns[1:])])
        for name, value in values.items():
            self.events.add_scalar(f"step/{name}", value, step)
        if self.wandb:
            self.wandb.log({f"step/{k}": v for k, v in values.items()}, step=step)

    def epoch(self, step: int, record: dict[str, Any]) -> None:
        numbers = {k: v for k, v in record.items() if k != "epoch" and isinstance(v, (int, float))}
        for name, value in numbers.items():
            self.events.add_scalar(f"epoch/{name}", value, step)
        if self.wandb:
            self.wandb.log({f"epoch/{k}": v for k, v in numbers.items()}, step=step)

    def flush(self) -> None:
        self.file.flush()
        self.events.flush()

    def close(self) -> None:
        self.file.close()
        self.events.close()
        if self.wandb:
            self.wandb.finish()


def _wandb_run(files: RunFiles, project: str | None) -> Any:
    """A Weights & Biases run for the run directory (the same one again on resume), or None without a project."""
    if not project:
        return None
    import wandb

    config: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        config = json.loads(files.config.read_text())
    return wandb.init(
        project=project,
        name=files.folder.name,
        id=files.folder.name,
        dir=str(files.folder),
        resume="allow",
        config=config.get("config"),
    )


def write_results(
    files: RunFiles,
    step: int,
    scores: dict[str, dict[str, dict[str, Any]]],
    wandb_project: str | None = None,
) -> None:
    """The final metrics (``scores``: prefix such as ``eval`` -> evaluator -> metric -> value) as TensorBoard
    scalars at the run's last step, and to W&B with a project (one W&B session for all of them)."""
    from torch.utils.tensorboard import SummaryWriter

    scalars = {
        f"{prefix}/{evaluator}/{metric}": value
        for prefix, results in scores.items()
        for evaluator, metrics in results.items()
        for metric, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    with SummaryWriter(str(files.events)) as events:
        for tag, value in scalars.items():
            events.add_scalar(tag, value, step)
    run = _wandb_run(files, wandb_project)
    if run:
        run.log(scalars, step=step)
        run.finish()
