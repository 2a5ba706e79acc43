"""Input encodings: an image ``[B, ...]`` becomes a sequence ``[T, B, ...]``.

* direct: ``x_t = x`` for every ``t`` (the first conv then acts as the encoder).
* poisson (rate): ``x_t ~ Bernoulli(clamp(x * std + mean, 0, 1))`` independently per
  step: the normalisation the data pipeline applied is undone, so the expected value of
  ``x_t`` is the pixel intensity in ``[0, 1]`` while a teacher sees the same normalised
  batch it was trained on.
"""

from __future__ import annotations

import torch
from torch import nn

from snnkd.registry import Registry

ENCODERS: Registry[type[Encoder]] = Registry("encoding")


class Encoder(nn.Module):
    """Base class: ``forward(x, T) -> [T, B, ...]``; registered with ``@ENCODERS.register()``."""

    name = "encoder"

    @classmethod
    def from_data(cls, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> Encoder:
        """The encoder for data normalised with ``mean``/``std`` (most ignore them)."""
        return cls()

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@ENCODERS.register()
class DirectEncoder(Encoder):
    """Images repeat over the ``T`` steps.  Event frames ``[B, F, C, H, W]`` (e.g.
    CIFAR10-DVS, :mod:`snnkd.dvs`) are already a sequence: frame ``t`` at step ``t`` when
    ``T == F``, and their mean as one step for an ANN (``T == 1``)."""

    name = "direct"

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        if x.dim() == 5:
            if x.shape[1] == T:
                return x.transpose(0, 1)
            if T == 1:
                return x.mean(1).unsqueeze(0)
            raise ValueError(f"input has {x.shape[1]} event frames but the model runs T = {T} steps; "
                             f"use --T {x.shape[1]}")
        return x.unsqueeze(0).expand(T, *x.shape)


@ENCODERS.register()
class PoissonEncoder(Encoder):
    name = "poisson"

    @classmethod
    def from_data(cls, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> Encoder:
        return cls(mean, std)

    def __init__(self, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> None:
        super().__init__()
        # plain attributes, not buffers: the encoding is metadata, not weights
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        if self.mean is not None and self.std is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            x = x * torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape) + \
                torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        p = x.clamp(0.0, 1.0).unsqueeze(0).expand(T, *x.shape)
        return torch.bernoulli(p)


def make_encoder(name: str, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> Encoder:
    """An encoder by name; ``mean``/``std`` are the data normalisation Poisson undoes."""
    return ENCODERS[name].from_data(mean, std)
