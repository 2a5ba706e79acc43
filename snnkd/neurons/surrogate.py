"""The surrogate derivative of the Heaviside step, written once (in place), and the spike
function that uses it in its backward pass.

``g'(u) = (1/w) f(u/w)`` of width ``w`` at ``u = h - theta``, ``f`` of unit area:

* ``atan``      ``f(u) = 1 / (2 (1 + (pi u / 2)^2))``
* ``sigmoid``   ``f(u) = sigma(u) (1 - sigma(u))``
* ``triangle``  ``f(u) = max(0, 1 - |u|)``
"""

from __future__ import annotations

import math

import torch

from snnkd.neurons.config import SURROGATES


def surrogate_grad_(u: torch.Tensor, kind: str, width: float) -> torch.Tensor:
    """Overwrite ``u = h - theta`` with ``g'(u)`` (the one place the formulas are written)."""
    if kind == "atan":
        return u.mul_(math.pi / (2.0 * width)).square_().add_(1.0).reciprocal_().mul_(0.5 / width)
    if kind == "sigmoid":
        sig = u.div_(width).sigmoid_()
        return sig.mul_(1.0 - sig).div_(width)
    if kind == "triangle":
        return u.abs_().mul_(-1.0 / width).add_(1.0).clamp_(min=0.0).div_(width)
    raise ValueError(f"unknown surrogate {kind!r}; choose one of {SURROGATES}")


def surrogate_grad(u: torch.Tensor, kind: str, width: float) -> torch.Tensor:
    """:func:`surrogate_grad_` on a copy: ``u`` is left unchanged."""
    return surrogate_grad_(u.detach().clone(), kind, width)


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward (``u > 0``), surrogate derivative backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, kind: str, width: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.kind, ctx.width = kind, width
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad_out * surrogate_grad(u, ctx.kind, ctx.width), None, None


def spike_fn(u: torch.Tensor, kind: str = "atan", width: float = 0.5) -> torch.Tensor:
    """``Theta(u)`` with the chosen surrogate gradient."""
    return _SpikeFn.apply(u, kind, width)
