"""A run directory's files: their names, and reading and writing the recorded config and the encoder weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from sslkit.errors import UsageError

CONFIG = "config.json"
ENCODER = "encoder.safetensors"


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG
    if not run_dir.is_dir() or not path.exists():
        raise UsageError(
            f"{run_dir} is not an sslkit run directory (no {CONFIG}); pass a directory made by `sslkit run`"
        )
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise UsageError(f"{path} is not valid JSON; the run directory is damaged") from None


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
