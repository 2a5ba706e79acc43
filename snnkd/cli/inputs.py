"""The one place where a command turns ``--data-root`` into tensors.

Exporters and counters (``snnkd.export``) take tensors only; ``snnkd export`` and
``snnkd energy`` get them here, so which samples a check runs on is decided once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

Split = Literal["test", "calibration"]


def model_inputs(meta: dict, data_root: str | Path, split: Split, limit: int | None,
                 download: bool = False, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of the model's dataset (``meta["dataset"]``), un-encoded images and labels.

    ``test``: the fixed test subset of ``limit`` samples (all when ``None``), the samples an
    export is verified on.  ``calibration``: ``limit`` training samples (never test data), a
    fixed random subset drawn with the training transforms under ``seed``; the global random
    state is left as it was.
    """
    from snnkd.data import build_datasets
    if split == "test":
        _, _, test = build_datasets(meta["dataset"], data_root, 0.0, download, limit_test=limit)
        return _stack(test, range(len(test)))
    if split != "calibration":
        raise ValueError(f"unknown split {split!r}")
    if limit is None or limit < 1:
        raise ValueError("a calibration batch needs a positive number of samples")
    train, _, _ = build_datasets(meta["dataset"], data_root, 0.1, download)
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:limit].tolist()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _stack(train, idx)


def _stack(ds, idx) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(ds[i] for i in idx))
    return torch.stack(list(xs)), torch.tensor(ys)
