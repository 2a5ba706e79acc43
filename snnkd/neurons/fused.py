"""The fused BPTT kernel: the ``T`` steps of :func:`~snnkd.neurons.equation.neuron_step`
as one autograd node (same spikes, final membrane and surrogate gradients as
:func:`~snnkd.neurons.equation.run_steps`, saving ``sg`` instead of every step's graph)."""

from __future__ import annotations

import torch

from snnkd.neurons.compiled import compilable
from snnkd.neurons.config import NeuronConfig
from snnkd.neurons.equation import neuron_step, state_dtype, unroll
from snnkd.neurons.surrogate import surrogate_grad_


class _MultiStepFn(torch.autograd.Function):
    """Forward runs :func:`unroll` (``H_t`` and ``S_t`` into ``[T, ...]`` buffers) and
    converts ``H`` in place into ``sg_t = g'(H_t - V_th)``; it saves ``sg`` and the spikes
    (plus ``H`` for hard reset without detach).  Backward runs the adjoint recursion

    ``dL/dH_t = dL/dS_t sg_t + dL/dV_t rho_t``,  ``dL/dV_{t-1} = beta dL/dH_t``,
    ``dL/dX_t = dL/dH_t``, ``dL/dV_T`` from the returned final membrane,

    with ``rho_t = dV_t/dH_t`` of :func:`~snnkd.neurons.equation.reset_factor`.
    """

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, v0: torch.Tensor | None, cfg: NeuronConfig, need_grad: bool):  # type: ignore[override]
        ctx.cfg, ctx.has_v0, ctx.done, ctx.x_dtype = cfg, v0 is not None, False, x_seq.dtype
        spikes, v, sg, keep_h = _spike_pass(x_seq, v0, cfg, need_grad)
        if need_grad:
            ctx.save_for_backward(sg, spikes, keep_h)
        return spikes, v

    @staticmethod
    def backward(ctx, g_s: torch.Tensor | None, g_v: torch.Tensor | None):  # type: ignore[override]
        if ctx.done:
            raise RuntimeError("the fused neuron's backward reuses its buffers and runs once per forward")
        sg, spikes, h = ctx.saved_tensors
        cfg: NeuronConfig = ctx.cfg
        T, beta = sg.shape[0], cfg.beta
        rho: torch.Tensor | None = None  # dv_t/dh_t when it involves sg (reset not detached)
        if not cfg.detach_reset:
            rho = 1.0 - cfg.threshold * sg if cfg.reset == "soft" else (1.0 - spikes.to(sg.dtype)).sub_(h * sg)
        if g_s is None:
            gh = torch.zeros_like(sg)
        elif rho is None:  # sg is needed no more: turn it into dL/dh in place
            ctx.done = True
            gh = sg.mul_(g_s)
        else:
            gh = g_s * sg

        def add_dv(t: int, dv: torch.Tensor, scale: float) -> None:
            """``gh[t] += scale * dv * rho_t``."""
            if rho is not None:
                gh[t].addcmul_(dv, rho[t], value=scale)
            elif cfg.reset == "soft":
                gh[t].add_(dv, alpha=scale)
            else:  # hard, detached: rho = 1 - s
                gh[t].add_(dv, alpha=scale).addcmul_(dv, spikes[t], value=-scale)

        if g_v is not None:
            add_dv(T - 1, g_v, 1.0)
        for t in range(T - 2, -1, -1):  # dL/dv_t = beta dL/dh_{t+1}
            add_dv(t, gh[t + 1], beta)
        g_v0 = gh[0] * beta if ctx.has_v0 else None
        return gh.to(ctx.x_dtype), g_v0, None, None


def _spike_pass_inplace(x_seq: torch.Tensor, v0: torch.Tensor | None, cfg: NeuronConfig, need_grad: bool):
    """:func:`unroll`, then ``H`` turned in place into ``sg = g'(H - V_th)`` when a backward
    pass will need it; returns ``(spikes, V_T, sg or None, H or None)`` (``H`` kept only for
    hard reset without detach)."""
    h, spikes, v = unroll(x_seq, v0, cfg)
    if not need_grad:
        return spikes, v, None, None
    keep_h = h.clone() if (cfg.reset == "hard" and not cfg.detach_reset) else None
    sg = surrogate_grad_(h.sub_(cfg.threshold), cfg.surrogate, cfg.width)
    return spikes, v, sg, keep_h


def _spike_pass_fused(x_seq: torch.Tensor, v0: torch.Tensor | None, cfg: NeuronConfig, need_grad: bool):
    """:func:`_spike_pass_inplace` step by step without buffers or in-place ops, the form
    inductor fuses into one pass (see :func:`snnkd.neurons.eligibility._record_fused`)."""
    dt = state_dtype(x_seq)
    v = torch.zeros_like(x_seq[0], dtype=dt) if v0 is None else v0.to(dt)
    keep = need_grad and cfg.reset == "hard" and not cfg.detach_reset
    spikes, sgs, hs = [], [], []
    for t in range(x_seq.shape[0]):
        s, v, h = neuron_step(x_seq[t], v, cfg, surrogate=False)
        spikes.append(s.to(x_seq.dtype))
        if need_grad:
            sgs.append(surrogate_grad_(h - cfg.threshold, cfg.surrogate, cfg.width))
        if keep:
            hs.append(h)
    return (torch.stack(spikes), v, torch.stack(sgs) if need_grad else None,
            torch.stack(hs) if keep else None)


# compiled inside snnkd.neurons.compiled.use_compiled_neurons (the fused form)
_spike_pass = compilable(_spike_pass_inplace, _spike_pass_fused)


def multi_step(x_seq: torch.Tensor, cfg: NeuronConfig,
               v0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused :func:`~snnkd.neurons.equation.run_steps`: ``(spikes [T, ...], V_T)``."""
    need_grad = torch.is_grad_enabled() and (x_seq.requires_grad or (v0 is not None and v0.requires_grad))
    return _MultiStepFn.apply(x_seq, v0, cfg, need_grad)
