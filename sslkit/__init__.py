"""sslkit: self-supervised pretraining and few-label evaluation, extended through plugins."""

from sslkit.errors import UsageError
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
)

__version__ = "0.1.0"
__all__ = [
    "Batch",
    "Component",
    "DataInfo",
    "DatasetBundle",
    "EvalContext",
    "EvalResult",
    "Evaluator",
    "Pretext",
    "Split",
    "UsageError",
    "__version__",
    "hookimpl",
]
