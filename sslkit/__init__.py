"""sslkit: self-supervised and semi-supervised learning with few labels, extended through plugins.

What a plugin may use is exported here, and nowhere else is promised to stay put: the contracts
(:class:`Component`, :class:`Pretext`, :class:`Batch`, :class:`EvalContext`, ...), ``hookimpl``, and the helpers
``augment`` (batched augmentations on the device), ``pixel_embedding``, ``mlp_head``, ``make_optimizer``,
``autocast``, ``gather_with_grad``, ``all_reduce_mean``, ``atomic_write_text`` and ``log``. For notebooks:
:func:`run` (``sslkit run`` from Python), :func:`load_run` and :func:`load_encoder` (a finished run's trained
encoder)."""

from sslkit.blocks import mlp_head, update_average
from sslkit.build import TrainedRun, load_encoder, load_run
from sslkit.classifier import Classifier, fold_affine, linear_head
from sslkit.data import augment
from sslkit.embedding import pixel_embedding
from sslkit.engine.distributed import all_reduce_mean, gather_with_grad
from sslkit.errors import UsageError
from sslkit.features import extract_features
from sslkit.hookspecs import hookimpl
from sslkit.interfaces import (
    Batch,
    Component,
    DataInfo,
    DatasetBundle,
    EvalContext,
    EvalResult,
    Evaluator,
    Pretext,
    Split,
    autocast,
    make_optimizer,
)
from sslkit.probe import C_GRID, fit_probe, standardization
from sslkit.runner import RunResult
from sslkit.runner import run_settings as run
from sslkit.util import atomic_write_text, log

__version__ = "0.1.0"
__all__ = [
    "C_GRID",
    "Batch",
    "Classifier",
    "Component",
    "DataInfo",
    "DatasetBundle",
    "EvalContext",
    "EvalResult",
    "Evaluator",
    "Pretext",
    "RunResult",
    "Split",
    "TrainedRun",
    "UsageError",
    "__version__",
    "all_reduce_mean",
    "atomic_write_text",
    "augment",
    "autocast",
    "extract_features",
    "fit_probe",
    "fold_affine",
    "gather_with_grad",
    "hookimpl",
    "linear_head",
    "load_encoder",
    "load_run",
    "log",
    "make_optimizer",
    "mlp_head",
    "pixel_embedding",
    "run",
    "standardization",
    "update_average",
]
