"""MNIST-variation datasets: MNIST with a background, random noise or rotation in the
training *and* test images (KDSNN Tab. 2's protocol, after Larochelle et al., ICML 2007).

``mnist_<variant>`` for ``variant`` in :data:`snnkd.noise.KDSNN_MNIST` (``background``,
``random_noise``, ``rotation``, ``rotation_background``): torchvision reads real MNIST
(``<root>/MNIST/raw``), and every image ``x`` in ``[0, 1]`` is replaced once by
``round(255 * v(x)) / 255`` with ``v`` the transform of :func:`snnkd.noise.variant_transform`
(the same corruption ``snnkd evaluate --noise`` applies at test time).  The corruption is
drawn from a generator seeded per split (training 0, test 1), so the sets are fixed, the
same for every run and job, as the published benchmarks are, and the global random state
is left as it was.

Our definition, not the published files (which are not available offline): the splits are
MNIST's 60,000 / 10,000 (the published sets are 12,000 / 50,000; ``limit_train: 12000``
gives their training size); ``background`` is a smooth random texture instead of patches
of natural images.  Building a set costs a few seconds (``rotation*``: about 30 s for all
70,000 images, since a rotation is drawn per image).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torchvision import datasets as tvd

from snnkd.inmemory import InMemoryImages
from snnkd.noise import KDSNN_MNIST, variant_transform

SEEDS = {"train": 0, "test": 1}


def corrupt_images(images: torch.Tensor, spec: str, seed: int) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` -> the same images with variant ``spec`` applied, uint8.

    One draw per image (a rotation angle, a background), from ``seed``."""
    t = variant_transform(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = images.float() / 255.0
        if spec.startswith("rotation"):  # RandomRotation draws one angle per call: one call per image
            out = torch.stack([t(img) for img in x])
        else:  # the backgrounds are drawn per image within a batch
            out = torch.cat([t(chunk) for chunk in x.split(4096)])
    return (out.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def variant_splits(spec: str) -> Callable:
    """The ``splits`` function of dataset ``mnist_<spec>`` (see :func:`snnkd.data.register_dataset`)."""
    def splits(root: Path, t_train: Callable, t_test: Callable, download: bool):
        out = []
        for split, train in (("train", True), ("test", False)):
            base = InMemoryImages.from_torchvision(tvd.MNIST(root, train=train, download=download), None)
            out.append((corrupt_images(base.data, spec, SEEDS[split]), base.targets))
        (tr_x, tr_y), (te_x, te_y) = out
        return InMemoryImages(tr_x, tr_y, t_train), InMemoryImages(tr_x, tr_y, t_test), InMemoryImages(te_x, te_y, t_test)
    return splits


VARIANT_DATASETS = tuple(f"mnist_{v}" for v in KDSNN_MNIST)
