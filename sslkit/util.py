"""Small general helpers every layer may use: the terminal (log lines, the training bar, status spinners; piped
output such as CI logs or ``| tee`` gets plain lines, no bar frames, no wrapping) and atomic file writes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


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
    return progress_bar(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TextColumn("{task.fields[terms]}"),
        TextColumn("{task.fields[ips]} img/s"),
        TimeElapsedColumn(),
        enabled=enabled,
    )


def progress_bar(*columns: ProgressColumn, enabled: bool = True, transient: bool = False) -> Progress:
    """A bar on stderr with ``columns``, then the ETA; off when not ``enabled`` or not on a terminal."""
    return Progress(
        *columns,
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=transient,
    )


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with ``message`` while a stage runs (feature extraction, probe fitting, t-SNE...), on a terminal."""
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run small tensor work (a probe on a few hundred feature rows) on one thread: at that size a second
    thread only adds synchronization, and beside any other busy process it waits for a core (the linear probe on
    30 rows: 2 s on one thread, 20-110 s on two with the other core busy)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def log(msg: str) -> None:
    """A line on stderr, from the first process only under torchrun."""
    import torch.distributed as torch_dist

    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_rank() == 0:
        console.print(msg)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``: a
    kill at any moment leaves the old file or the new one, never half of one. A missing folder is made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
