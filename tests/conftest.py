from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Under pytest-xdist (README's `-n auto`) the workers share the cores: each gets its share of threads, and so do
# the sslkit processes its tests start. Two threads per process beside other busy ones would spin on each other.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
torch.set_num_threads(min(_THREADS, torch.get_num_threads()))

_HERE = Path(__file__).resolve().parent.parent


def _data_root() -> Path | None:
    if os.environ.get("SSLKIT_DATA"):
        return Path(os.environ["SSLKIT_DATA"])
    shared = _HERE.parent / "shared" / "data"
    return shared if shared.exists() else None


DATA_ROOT = _data_root()


@pytest.fixture(scope="session")
def data_root() -> Path:
    if DATA_ROOT is None or not (DATA_ROOT / "FashionMNIST" / "raw").exists():
        pytest.skip("Fashion-MNIST not found: set SSLKIT_DATA to a folder holding FashionMNIST/raw")
    return DATA_ROOT


@pytest.fixture(scope="session")
def mnist(data_root: Path):
    if not (data_root / "MNIST" / "raw").exists():
        pytest.skip("MNIST not found under the data root")
    from sslkit.registry import load_registry

    return load_registry().build("dataset", "mnist", data_root, False)


@pytest.fixture(scope="session")
def fashion(data_root: Path):
    from sslkit.registry import load_registry

    return load_registry().build("dataset", "fashion-mnist", data_root, False)


@pytest.fixture(scope="session")
def registry():
    from sslkit.registry import load_registry

    return load_registry()


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never touch the real cache directory and always see the shared data root."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if DATA_ROOT is not None:
        monkeypatch.setenv("SSLKIT_DATA", str(DATA_ROOT))
