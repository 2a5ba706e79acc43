"""Corrupted test sets for noise-robustness evaluation (KDSNN, Tab. 2).

Every variant acts on images with values in ``[0, 1]`` (before normalisation) and is
built from torchvision transforms (``transforms.v2``):

* ``gaussian:S`` — additive Gaussian noise of standard deviation ``S``, clipped to
  ``[0, 1]`` (``v2.GaussianNoise``): the CIFAR-10 rows, ``S`` in 0.01, 0.03, 0.05.
* ``random_noise`` — MNIST-back-rand style: every pixel becomes ``max(x, u)``,
  ``u ~ U(0, 1)``, i.e. a uniform random background behind the object.
* ``background`` — MNIST-back-image style (our definition; no natural-image patches
  offline): ``max(x, b)`` with ``b`` a smooth random texture, uniform noise blurred by
  ``v2.GaussianBlur`` (kernel ~ image size / 4) and stretched to ``[0, 1]``.
* ``rotation`` — MNIST-rot style: ``v2.RandomRotation`` by an angle uniform in [0, 360).
* ``rotation_background`` — rotation, then ``background``.

Randomness comes from torch's global generator; seed it once before iterating.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from snnkd.errors import SnnkdError

VARIANTS = ("gaussian", "random_noise", "background", "rotation", "rotation_background")
KDSNN_CIFAR = ("gaussian:0.01", "gaussian:0.03", "gaussian:0.05")
KDSNN_MNIST = ("background", "random_noise", "rotation", "rotation_background")


class MaxWithBackground(v2.Transform):
    """``x -> max(x, b)`` with a fresh random background ``b`` per image."""

    def __init__(self, smooth: bool) -> None:
        super().__init__()
        self.smooth = smooth

    def _background(self, shape: torch.Size) -> torch.Tensor:
        b = torch.rand(shape)
        if self.smooth:
            k = max(3, (min(shape[-2:]) // 4) | 1)  # odd kernel about a quarter of the image
            b = v2.functional.gaussian_blur(b, [k, k], [k / 3.0, k / 3.0])
            lo, hi = b.amin(dim=(-2, -1), keepdim=True), b.amax(dim=(-2, -1), keepdim=True)
            b = (b - lo) / (hi - lo).clamp_min(1e-6)
        return b

    def transform(self, inpt, params):  # torchvision >= 0.21 hook
        return torch.maximum(inpt, self._background(inpt.shape).to(inpt.dtype))

    def _transform(self, inpt, params):  # older torchvision
        return self.transform(inpt, params)


def parse_variant(spec: str) -> tuple[str, float | None]:
    """``"gaussian:0.03"`` -> ``("gaussian", 0.03)``; ``"rotation"`` -> ``("rotation", None)``."""
    name, _, arg = spec.partition(":")
    if name not in VARIANTS:
        raise SnnkdError(f"unknown noise variant {spec!r}; choose gaussian:SIGMA, {', '.join(VARIANTS[1:])}")
    if name == "gaussian":
        try:
            sigma = float(arg)
        except ValueError:
            raise SnnkdError(f"noise {spec!r}: gaussian needs a standard deviation, e.g. gaussian:0.03") from None
        if not sigma >= 0:
            raise SnnkdError(f"noise {spec!r}: sigma must be >= 0")
        return name, sigma
    if arg:
        raise SnnkdError(f"noise {spec!r}: {name} takes no argument")
    return name, None


def variant_transform(spec: str) -> v2.Transform:
    """The transform for one variant spec (input and output in ``[0, 1]``)."""
    name, sigma = parse_variant(spec)
    if name == "gaussian":
        return v2.GaussianNoise(mean=0.0, sigma=float(sigma), clip=True)
    if name == "random_noise":
        return MaxWithBackground(smooth=False)
    if name == "background":
        return MaxWithBackground(smooth=True)
    rotate = v2.RandomRotation(degrees=(0.0, 360.0))
    return rotate if name == "rotation" else v2.Compose([rotate, MaxWithBackground(smooth=True)])


class CorruptedDataset(Dataset):
    """``base`` (unnormalised ``[0, 1]`` images) with ``corrupt`` then ``normalize`` applied."""

    def __init__(self, base: Dataset, corrupt: v2.Transform, normalize: v2.Transform | None) -> None:
        self.base, self.corrupt, self.normalize = base, corrupt, normalize

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.base[i]
        x = self.corrupt(x)
        return (self.normalize(x) if self.normalize is not None else x), y
