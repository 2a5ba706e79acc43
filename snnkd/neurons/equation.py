"""The neuron equation, written once: :func:`neuron_step`.

Every consumer runs this function: the step-by-step reference (:func:`run_steps`), the
fused BPTT kernel (:mod:`snnkd.neurons.fused`), the rate trainer's recorder
(:func:`snnkd.neurons.eligibility.record_steps`) and the ONNX export neuron
(:class:`snnkd.export.onnx_export.ExportNeuron`).
"""

from __future__ import annotations

import torch

from snnkd.neurons.config import NeuronConfig
from snnkd.neurons.surrogate import spike_fn

Buffers = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def neuron_step(x: torch.Tensor, v: torch.Tensor, cfg: NeuronConfig, *, surrogate: bool = True,
                out: Buffers | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One time step of the IF/LIF neuron; returns ``(S_t, V_t, H_t)``.

    * charge ``H_t = V_{t-1} + X_t`` (IF),  ``H_t = beta V_{t-1} + X_t`` (LIF,
      ``beta = decay = 1 - 1/tau``; the input is not scaled by ``1/tau``)
    * fire   ``S_t = Theta(H_t - V_th)`` (strict ``>``, as NIR and Loihi define it)
    * reset  hard ``V_t = H_t (1 - S_t)`` (``V_reset = 0``), soft ``V_t = H_t - V_th S_t``
    * surrogate ``dS_t/dH_t = g'(H_t - V_th)`` (:mod:`snnkd.neurons.surrogate`)

    ``surrogate=True``: the spike carries the surrogate gradient and, with
    ``cfg.detach_reset``, the reset term is detached.  ``surrogate=False``: plain tensor
    ops, no gradient through the spike (export, graph-free loops).  ``out = (h, s, v)``
    writes ``H_t``, ``S_t`` and ``V_t`` into those buffers (graph-free only; ``v`` may be
    the input membrane itself).
    """
    h_out, s_out, v_out = out if out is not None else (None, None, None)
    if cfg.beta == 1.0:
        h = torch.add(x, v, out=h_out)
    else:
        h = torch.mul(v, cfg.beta, out=h_out).add_(x)
    if surrogate:
        s = spike_fn(h - cfg.threshold, cfg.surrogate, cfg.width)
        s_r = s.detach() if cfg.detach_reset else s
    else:
        s = torch.gt(h, cfg.threshold, out=s_out) if s_out is not None else torch.gt(h, cfg.threshold).to(h.dtype)
        s_r = s
    if cfg.reset == "hard":
        v_next = torch.addcmul(h, h, s_r, value=-1.0, out=v_out)
    else:
        v_next = torch.sub(h, s_r, alpha=cfg.threshold, out=v_out)
    return s, v_next, h


def run_steps(x_seq: torch.Tensor, cfg: NeuronConfig, v0: torch.Tensor | None = None, *,
              surrogate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`neuron_step` over ``x_seq [T, ...]`` from ``v0`` (zeros if None);
    returns ``(spikes [T, ...], V_T)``."""
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    out = []
    for t in range(x_seq.shape[0]):
        s, v, _ = neuron_step(x_seq[t], v, cfg, surrogate=surrogate)
        out.append(s)
    return torch.stack(out), v


def state_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of the membrane for input ``x``: fp32 for a bf16/fp16 current, else its own.

    Under mixed precision the neuron keeps its membrane (and eligibility) in fp32 so that a
    spike is decided on an fp32 potential: in bf16 (8-bit mantissa) the threshold and every
    potential near it would be rounded to steps of 2^-7, and a small current added to a large
    membrane over ``T`` steps would be lost.  The low-precision current is promoted inside the
    charge ``H_t = beta V_{t-1} + X_t`` (no separate fp32 copy of ``X``)."""
    return torch.float32 if x.dtype in (torch.bfloat16, torch.float16) else x.dtype


def unroll(x_seq: torch.Tensor, v0: torch.Tensor | None, cfg: NeuronConfig) -> Buffers:
    """:func:`neuron_step` over ``x_seq`` without a graph, into preallocated ``[T, ...]``
    buffers: returns pre-reset membranes ``H`` and the final ``V_T`` in
    :func:`state_dtype`, and spikes ``S`` in the input's dtype (0/1: exact in bf16/fp16,
    and the dtype the next layer computes in)."""
    h = torch.empty_like(x_seq, dtype=state_dtype(x_seq), memory_format=torch.contiguous_format)
    spikes = torch.empty_like(x_seq, memory_format=torch.contiguous_format)
    v = torch.zeros_like(h[0]) if v0 is None else v0.to(h.dtype).clone(memory_format=torch.contiguous_format)
    for t in range(x_seq.shape[0]):
        neuron_step(x_seq[t], v, cfg, surrogate=False, out=(h[t], spikes[t], v))
    return h, spikes, v


def reset_factor(s: torch.Tensor, h: torch.Tensor, sg: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor | float:
    """``rho_t = dV_t / dH_t`` of the reset, with ``sg = g'(H_t - V_th)``:

    soft + detached reset ``1``; soft ``1 - V_th sg``; hard + detached ``1 - S``;
    hard ``1 - S - H sg``."""
    if cfg.reset == "soft":
        return 1.0 if cfg.detach_reset else 1.0 - cfg.threshold * sg
    return 1.0 - s if cfg.detach_reset else 1.0 - s - h * sg
