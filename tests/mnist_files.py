"""MNIST's raw IDX files (the layout torchvision reads) with synthetic images, so tests never
need the real data: each class lights a different 7x7 block of the 28x28 image, over noise."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_mnist_idx(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0, folder: str = "MNIST") -> Path:
    """``root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (``folder``: MNIST, or
    FashionMNIST, whose files have the same format); returns ``root``."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        lab = rng.integers(0, 10, n, dtype=np.uint8)
        img = rng.integers(0, 96, (n, 28, 28), dtype=np.uint8)
        for i, k in enumerate(lab):
            r, c = divmod(int(k), 4)
            img[i, 7 * r:7 * r + 7, 7 * c:7 * c + 7] += 150
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + img.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + lab.tobytes())
    return root
