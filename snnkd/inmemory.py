"""Small image datasets held as one uint8 tensor, transformed a batch at a time.

torchvision's MNIST, Fashion-MNIST and CIFAR classes already hold their images in memory
(``.data``), but hand them out one by one: ``__getitem__`` builds a PIL image per sample
and runs the transform pipeline on it.  On two CPU cores that per-sample path costs a
visible share of a small network's step (``benchmarks/data_path.py`` measures it).

:class:`InMemoryImages` keeps torchvision for reading and checking the files and takes
over only the hand-out: the images become one ``uint8`` tensor ``[N, C, H, W]``, and
:meth:`InMemoryImages.__getitems__` (the batched fetch PyTorch's ``DataLoader`` calls when
a dataset has one, also through ``Subset``) indexes the whole batch at once and applies
the transform in two parts (:func:`split_transform`):

* a per-sample part: the random augmentations (crop, flip, AutoAugment, Cutout), which
  must draw their randomness for each image; run on uint8 tensors, never on PIL images;
* a batched part: the deterministic element-wise tail ``ToDtype(float32, scale=True)``
  and ``Normalize``, ``x' = (x / 255 - mean) / std`` on the whole ``[B, C, H, W]`` batch.

Each element is computed by the same operations as the per-sample path, so the values are
bit-identical to torchvision's (``tests/test_inmemory.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

# Transforms that act element-wise and identically on every sample, so that applying them
# to a stacked batch equals applying them to each sample.
_BATCHABLE = (v2.ToDtype, v2.Normalize)


def split_transform(t: Callable | None) -> tuple[Callable | None, Callable | None]:
    """``(per_sample, batched)``: the prefix of a ``v2.Compose`` that must run per sample
    and its longest suffix of deterministic element-wise transforms, run on the batch.

    ``v2.ToImage`` is dropped from the prefix: the input already is a uint8 image tensor."""
    if t is None:
        return None, None
    steps = list(t.transforms) if isinstance(t, v2.Compose) else [t]
    cut = len(steps)
    while cut > 0 and isinstance(steps[cut - 1], _BATCHABLE):
        cut -= 1
    head = [s for s in steps[:cut] if not isinstance(s, v2.ToImage)]
    tail = steps[cut:]
    return (v2.Compose(head) if head else None), (v2.Compose(tail) if tail else None)


class InMemoryImages(Dataset):
    """``(image, label)`` pairs from a uint8 tensor ``[N, C, H, W]`` and integer labels.

    ``transform`` is a torchvision v2 transform of one uint8 image tensor ``[C, H, W]``
    (as :func:`snnkd.data.build_transforms` makes); it is split by :func:`split_transform`.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: Callable | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} labels")
        self.data = images.contiguous()
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.transform = transform
        self.per_sample, self.batched = split_transform(transform)

    @classmethod
    def from_torchvision(cls, ds: Dataset, transform: Callable | None) -> InMemoryImages:
        """From a torchvision dataset with ``.data`` (uint8, ``[N, H, W]`` as MNIST or
        ``[N, H, W, C]`` as CIFAR) and ``.targets``."""
        data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
        data = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
        return cls(data, torch.as_tensor(ds.targets), transform)

    def __len__(self) -> int:
        return len(self.targets)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        """The transform of a batch ``[B, C, H, W]``: per sample, then batched."""
        if self.per_sample is not None:
            x = torch.stack([torch.as_tensor(self.per_sample(xi)) for xi in x.unbind(0)])
        if self.batched is not None:
            x = self.batched(x)
        return x.as_subclass(torch.Tensor)  # a plain tensor, like default_collate gives

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._apply(self.data[i : i + 1])[0], int(self.targets[i])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        """One batch: index, transform once, hand back per-sample views for collation."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        x = self._apply(self.data[idx])
        return list(zip(x.unbind(0), self.targets[idx].tolist(), strict=True))
