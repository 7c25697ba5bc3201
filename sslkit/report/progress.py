"""What a run shows while it works: the training bar (ETA, images/s, the running loss terms) and a status line
for every later stage. Piped output (CI logs, ``| tee``) gets plain lines: no bar frames, no wrapping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _console(stderr: bool) -> Console:
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal:
        console.width = 240  # a log file has no width: never wrap a path or a table row at 80 columns
    return console


console = _console(stderr=True)  # progress and log lines
stdout = _console(stderr=False)  # results tables


def training_progress(enabled: bool = True) -> Progress:
    """The training bar; off when ``enabled`` is false or the output is not a terminal (the loop logs a line per
    epoch instead)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TextColumn("{task.fields[terms]}"),
        TextColumn("{task.fields[ips]} img/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=False,
    )


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with ``message`` while a stage runs (feature extraction, probe fitting, t-SNE...), on a terminal."""
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield
