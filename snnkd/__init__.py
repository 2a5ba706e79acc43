"""snnkd: ANN-to-SNN knowledge distillation, evaluation and neuromorphic export.

The Python API (:mod:`snnkd.api`) is imported on first use, so ``import snnkd`` (and
``snnkd --help``) stays free of torch::

    import snnkd
    teacher = snnkd.pretrain(model="resnet_tiny_wide", dataset="digits", epochs=1, out="runs/teacher")
    model, meta = snnkd.load_model(teacher)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("load_model", "pretrain", "distill", "evaluate", "count_ops", "price_energy", "test_inputs")

__all__ = [*_API, "export", "SnnkdError", "__version__"]


def __getattr__(name: str) -> Any:
    """``snnkd.NAME`` of the API: imports :mod:`snnkd.api` (or :mod:`snnkd.export`) the first time."""
    if name in _API:
        value = getattr(importlib.import_module("snnkd.api"), name)
    elif name == "export":
        value = importlib.import_module("snnkd.export")
    elif name == "SnnkdError":
        value = importlib.import_module("snnkd.errors").SnnkdError
    else:
        raise AttributeError(f"module 'snnkd' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
