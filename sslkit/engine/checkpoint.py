"""Atomic, verified checkpoints.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed over the old
one, so a kill at any moment leaves either the previous checkpoint or the new one, never half of one. Its SHA-256
sits in a sidecar file written the same way; a file that does not match is refused. Loading never unpickles
arbitrary objects (``weights_only=True``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from sslkit.errors import UsageError
from sslkit.util import atomic_write_bytes, atomic_write_text


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialize ``state`` (tensors, numbers, strings, lists, dicts) atomically with its checksum.

    The checksum is written first under a new name, so the pair is consistent: the old checkpoint stays valid
    until the rename of the new one, and the sidecar lists the digests of both during the switch."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    side = _sidecar(path)
    previous = _read_digests(side)[-1:] if side.exists() else []
    if path.exists() and previous:  # keep the last good checkpoint beside the new one (a hard link: no copy)
        prev = previous_path(path)
        tmp = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
        atomic_write_text(_sidecar(prev), json.dumps({"sha256": previous}))
        os.replace(tmp, prev)
    atomic_write_text(side, json.dumps({"sha256": [*previous, digest]}))
    atomic_write_bytes(path, data)
    atomic_write_text(side, json.dumps({"sha256": [digest]}))


def previous_path(path: Path) -> Path:
    """Where the checkpoint before the latest one is kept: ``checkpoint.prev.pt`` beside ``checkpoint.pt``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _read_digests(side: Path) -> list[str]:
    try:
        return list(json.loads(side.read_text())["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing it if it is truncated or altered."""
    if not path.exists():
        raise UsageError(
            f"no checkpoint at {path}; the run never finished an epoch, start it again without --resume"
        )
    data = path.read_bytes()
    digests = _read_digests(_sidecar(path))
    if hashlib.sha256(data).hexdigest() not in digests:
        fix = "delete it to start over"
        if previous_path(path).exists() and path.name != previous_path(path).name:
            fix = f"the previous good one is kept: move {previous_path(path).name} over it and resume"
        raise UsageError(
            f"checkpoint {path} is corrupt (its SHA-256 does not match {_sidecar(path).name}); {fix}"
        )
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise UsageError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); delete it to start over"
        ) from None
