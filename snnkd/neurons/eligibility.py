"""What the rate trainer (:mod:`snnkd.train.rate`) needs from the neuron equation: the
graph-free recorder of rate and eligibility, and the rate-pass neuron.  The state they
produce (``r``, ``e`` per neuron) is kept by the trainer, not here."""

from __future__ import annotations

import torch

from snnkd.neurons.compiled import compilable
from snnkd.neurons.config import NeuronConfig
from snnkd.neurons.equation import neuron_step, reset_factor, state_dtype, unroll
from snnkd.neurons.surrogate import surrogate_grad_


@torch.no_grad()
def record_steps(
    x_seq: torch.Tensor, cfg: NeuronConfig, v0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``T`` steps of :func:`~snnkd.neurons.equation.neuron_step` without a graph,
    recording rate and eligibility.

    Returns ``(spikes [T, ...], r, e, v_T)`` with ``r = (1/T) sum_t s_t`` and
    ``e = (1/T) sum_t kappa_t g'(h_t - theta)``, where ``kappa_0 = 1`` and
    ``kappa_t = 1 + beta * rho_{t-1} * kappa_{t-1}`` (``rho`` from
    :func:`~snnkd.neurons.equation.reset_factor`).

    ``kappa_t = dh_t/dc`` when every step receives the same input ``c``, so ``e = dr/dc``
    exactly for a constant input: for soft reset with detached reset ``rho = 1`` and
    ``kappa_t = 1 + lambda kappa_{t-1}`` (methods.md section 7); for hard reset the
    detached reset zeroes the carried membrane (``rho = 1 - s``), so ``kappa`` restarts at
    1 after each spike; IF is ``beta = lambda = 1`` (``kappa_t = t + 1`` between resets).

    Runs compiled inside :func:`~snnkd.neurons.compiled.use_compiled_neurons`.
    """
    return _record(x_seq, cfg, v0)


def _record_fused(x_seq: torch.Tensor, cfg: NeuronConfig,
                  v0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`record_steps` written step by step without buffers or in-place ops, the form
    inductor fuses into one pass over the neurons (each step's ``H_t``, ``g'`` and ``kappa_t``
    stay in registers): what runs under ``--compile-neurons``.  Eager, the in-place form
    (:func:`_record_inplace`) is faster (its fixed ``[T, ...]`` buffers); the two agree
    (``tests/test_compiled_neurons.py``).  Measured 2026-12-04, bf16 ``[4, 16, 64, 32, 32]``,
    1 thread: in-place eager 26.0 ms, in-place compiled 7.2 ms, this form compiled 2.2 ms."""
    T = x_seq.shape[0]
    dt = state_dtype(x_seq)
    v = torch.zeros_like(x_seq[0], dtype=dt) if v0 is None else v0.to(dt)
    spikes, rho = [], None
    for t in range(T):
        s, v, h = neuron_step(x_seq[t], v, cfg, surrogate=False)
        sg = surrogate_grad_(h - cfg.threshold, cfg.surrogate, cfg.width)
        if t == 0:
            kappa, e, r = torch.ones_like(sg), sg, s.to(dt)
        else:  # kappa_t = 1 + beta rho_{t-1} kappa_{t-1}
            kappa = kappa * rho * cfg.beta + 1.0
            e, r = e + kappa * sg, r + s
        rho = reset_factor(s, h, sg, cfg)
        spikes.append(s.to(x_seq.dtype))
    return torch.stack(spikes), r / T, e / T, v


def _record_inplace(x_seq: torch.Tensor, cfg: NeuronConfig,
                    v0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The eager body of :func:`record_steps`: :func:`unroll` into ``[T, ...]`` buffers, then
    the eligibility over them in place."""
    T = x_seq.shape[0]
    h, spikes, v = unroll(x_seq, v0, cfg)
    keep_h = h.clone() if (cfg.reset == "hard" and not cfg.detach_reset and T > 1) else None
    sg = surrogate_grad_(h.sub_(cfg.threshold), cfg.surrogate, cfg.width)
    if cfg.reset == "soft" and cfg.detach_reset:  # kappa_t = 1 + beta kappa_{t-1}: the same for every neuron
        w = [1.0]
        for _ in range(T - 1):
            w.append(1.0 + cfg.beta * w[-1])
        e = torch.tensordot(torch.tensor(w, dtype=sg.dtype, device=sg.device), sg, dims=1)
    else:
        e = sg[0].clone()
        kappa = torch.ones_like(e)
        for t in range(1, T):
            if cfg.reset == "hard" and cfg.detach_reset:  # rho = 1 - s
                kappa.addcmul_(kappa, spikes[t - 1], value=-1.0)
            else:
                kappa.mul_(reset_factor(spikes[t - 1], keep_h[t - 1] if keep_h is not None else h, sg[t - 1], cfg))
            if cfg.beta != 1.0:
                kappa.mul_(cfg.beta)
            e.addcmul_(kappa.add_(1.0), sg[t])
    # r in fp32 under mixed precision, as e.  A count of 0/1 spikes is exact in bf16/fp16 up to
    # T = 256 (2048), and summing in the spikes' own dtype is ~1.5x faster on CPU than a
    # mixed-dtype mean (measured 2026-12-03); the value is the same sum / T.
    exact = T <= (256 if spikes.dtype == torch.bfloat16 else 2048)
    r = spikes.sum(0).to(sg.dtype) if exact else spikes.sum(0, dtype=sg.dtype)
    r = r.div_(T)
    return spikes, r, e.div_(T), v


_record = compilable(_record_inplace, _record_fused)


class _RateFn(torch.autograd.Function):
    """Value ``r``, gradient ``e * grad``: the same as ``r + c*e - (c*e).detach()``."""

    @staticmethod
    def forward(ctx, c: torch.Tensor, r: torch.Tensor, e: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(e)
        return r.clone()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (e,) = ctx.saved_tensors
        return grad_out * e, None, None


def rate_fn(c: torch.Tensor, r: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Rate-pass neuron: returns ``r.detach() + c*e - (c*e).detach()`` (value ``r``,
    ``dr/dc = e``), saving only ``e`` for the backward pass."""
    return _RateFn.apply(c, r.detach(), e.detach())
