"""TensorBoard event files beside ``metrics.jsonl`` (``--tensorboard``: ``OUT/tensorboard/``).

Every number of an epoch's metrics record becomes a scalar at ``step = epoch``: each
weighted loss term (``loss/<term>``, as the method named it, and ``loss/total``), the
training and validation accuracy and loss, the learning rate, the epoch time and the
method's own epoch metrics (``method/<name>``, e.g. the block-wise cosine similarities);
for an SNN also the firing rate of every spiking layer on the first validation batch
(``firing_rate/<layer>``: spikes per neuron per time step).  Like ``metrics.jsonl`` the
directory is rewritten in full each epoch (built beside it and swapped in), so a killed
run never leaves a half-written event file and a resumed run shows one consistent history;
the firing rates of epochs run before a resume are not in the training state and are absent.
"""

from __future__ import annotations

import itertools
import numbers
from pathlib import Path

import torch

from snnkd import io

RENAMES = {"train_loss": "loss/total", "train_acc": "accuracy/train", "val_acc": "accuracy/val",
           "val_loss": "loss/val", "lr": "lr", "time_s": "time_s"}


def layer_rates(student, loader, device: torch.device) -> dict[str, float]:
    """Firing rate per spiking layer on the first batch of ``loader`` ({} for an ANN or no
    data), under its own RNG so that training draws exactly what it would without it."""
    if not getattr(student, "is_spiking", False):
        return {}
    from snnkd.ops import count_ops

    with torch.random.fork_rng(devices=[]):
        counts = count_ops(student, itertools.islice(loader, 1), device)
    return dict(counts.firing_rates)


def tag(key: str) -> str:
    """The TensorBoard tag of a metrics-record key."""
    if key in RENAMES:
        return RENAMES[key]
    if key.startswith("train_"):
        return "loss/" + key.removeprefix("train_")
    return "method/" + key


def write_events(logdir: Path, history: list[dict], rates: dict[int, dict[str, float]]) -> None:
    """Write the whole ``history`` (and the firing rates by epoch) as one event file in ``logdir``."""
    from torch.utils.tensorboard import SummaryWriter

    with io.atomic_dir(logdir) as tmp:
        writer = SummaryWriter(log_dir=str(tmp))
        try:
            for rec in history:
                step = int(rec["epoch"])
                for key, value in rec.items():
                    if key != "epoch" and isinstance(value, numbers.Real) and not isinstance(value, bool):
                        writer.add_scalar(tag(key), float(value), step)
                for layer, rate in rates.get(step, {}).items():
                    writer.add_scalar(f"firing_rate/{layer}", rate, step)
        finally:
            writer.close()
