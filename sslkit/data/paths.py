"""Where datasets live: ``--data-root``, else ``$SSLKIT_DATA``, else a per-user cache directory."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_root() -> Path:
    if os.environ.get("SSLKIT_DATA"):
        return Path(os.environ["SSLKIT_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "sslkit" / "data"
