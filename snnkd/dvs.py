"""CIFAR10-DVS as event frames, through ``tonic`` (optional extra ``snnkd[dvs]``).

tonic is GPL-3.0, so it is never imported at module level: only :func:`cifar10_dvs`
imports it, when that dataset is asked for.  Each recording becomes ``FRAMES`` frames
(``tonic.transforms.ToFrame`` with ``n_time_bins``: equal-time bins), 2 polarity channels,
event counts per pixel, average-pooled from the 128x128 sensor to ``SIZE`` x ``SIZE`` (48, as is
usual for this dataset).  A sample is
``[FRAMES, 2, SIZE, SIZE]``; the direct encoder feeds frame ``t`` at step ``t`` to an SNN
with ``T = FRAMES`` and the accumulated mean frame to an ANN (see ``snnkd.encoding``).

CIFAR10-DVS has no official split: a fixed stratified 90/10 train/test split (seed 0).
Layout expected under the data root: ``<root>/CIFAR10DVS/`` holding tonic's extracted
``.aedat4`` files (tonic downloads them when ``--download`` is given).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from snnkd.errors import SnnkdError

FRAMES = 10
SIZE = 48
SENSOR = (128, 128, 2)


def events_to_frames(events: np.ndarray, frames: int = FRAMES, size: int = SIZE) -> torch.Tensor:
    """Structured events (fields t, x, y, p) -> float ``[frames, 2, size, size]`` counts
    per pixel per time bin, average-pooled from the sensor resolution."""
    from tonic.transforms import ToFrame  # GPL-3.0: imported only when used

    f = ToFrame(sensor_size=SENSOR, n_time_bins=frames)(events)  # [frames, 2, 128, 128]
    x = torch.as_tensor(np.asarray(f), dtype=torch.float32)
    if x.shape[0] != frames:  # tonic returns fewer bins for recordings with too few events
        x = torch.cat([x, x.new_zeros(frames - x.shape[0], *x.shape[1:])])
    return F.adaptive_avg_pool2d(x, size) if size != SENSOR[0] else x


class FramesDataset(Dataset):
    """A tonic event dataset seen as frame tensors."""

    def __init__(self, events: Dataset, frames: int = FRAMES, size: int = SIZE) -> None:
        self.events, self.frames, self.size = events, frames, size

    def __len__(self) -> int:
        return len(self.events)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        ev, y = self.events[i]
        return events_to_frames(ev, self.frames, self.size), int(y)


def _present(root: Path) -> bool:
    d = root / "CIFAR10DVS"
    return d.is_dir() and sum(1 for _ in d.rglob("*.aedat4")) >= 1000


def cifar10_dvs(root: str | Path, download: bool = False) -> tuple[Dataset, Dataset]:
    """``(train, test)`` frame datasets of CIFAR10-DVS (90/10 stratified, seed 0)."""
    root = Path(root)
    try:
        import tonic
    except ImportError:
        raise SnnkdError("dataset 'cifar10_dvs' needs the optional extra: pip install 'snnkd[dvs]' "
                         "(tonic, GPL-3.0)") from None
    if not download and not _present(root):
        raise SnnkdError(f"dataset 'cifar10_dvs' not found under {root} (pass --download to fetch it); expected layout: "
                         f"{root}/CIFAR10DVS/<class>/*.aedat4 as tonic extracts it")
    try:
        events = tonic.datasets.CIFAR10DVS(save_to=str(root))
    except Exception as e:  # network or archive errors from tonic
        raise SnnkdError(f"dataset 'cifar10_dvs': tonic could not load it: {str(e).splitlines()[0]}") from None
    train_idx, test_idx = stratified_split(np.asarray(events.targets), 0.1, seed=0)
    ds = FramesDataset(events)
    return Subset(ds, train_idx), Subset(ds, test_idx)


def stratified_split(targets: np.ndarray, test_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Per class, a fixed random ``test_fraction`` of the indices goes to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        rng.shuffle(idx)
        k = int(round(test_fraction * len(idx)))
        test += idx[:k].tolist()
        train += idx[k:].tolist()
    return sorted(train), sorted(test)
