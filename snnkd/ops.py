"""Counting synaptic operations, MACs and firing rates with forward hooks.

For each ``Conv2d`` / ``Linear`` layer, per sample (methods.md section 8):

* fed by spikes (input entirely 0/1): ``SynOps = sum over input spikes of the input
  neuron's fan-out``, summed over ``T``.  For a conv the fan-out of input position ``p``
  is ``C_out/groups`` times the number of output positions whose receptive field holds
  ``p``, so the count is exact at borders and strides:
  ``SynOps = (C_out/groups) * sum conv2d(S_g, ones(k, k), stride, padding)`` where
  ``S_g`` sums the spikes over each group's input channels.  For linear it is
  ``nnz(s) * out_features``.
* fed by spikes through average pooling or flattening (``conv(avgpool(s))``, the GAP +
  linear head): pooling is linear, so each spike still triggers only accumulates; the
  pooled input ``p`` is turned back into spike counts ``c = p * area`` (a sum pool with
  the ``1/area`` folded into the next layer's weights) and ``SynOps = sum_i c_i fanout(i)``.
* fed by real values: ``MACs = FLOPs`` of the layer, once per time step it runs.

Events (synaptic events on an event-driven chip) = SynOps for a spike input, and
``sum_i [x_i != 0] fanout(i)`` for a real input (graded spikes).  Neuron updates = number
of neurons x ``T``.  Firing rate of a spiking layer = mean spike count per neuron per time
step.  The counts are a :class:`snnkd.energy.Counts`; :func:`snnkd.energy.price` prices them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snnkd.energy import Counts, LayerCounts
from snnkd.models.base import StagedNet
from snnkd.neurons import SpikingNeuron

# the counts type lives in snnkd.energy; the old names stay importable
OpsReport = Counts
LayerOps = LayerCounts


def is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def conv_synops(s: torch.Tensor, conv: nn.Conv2d) -> float:
    """Exact synaptic operations of ``conv`` driven by a 0/1 tensor ``s`` ``[N, C, H, W]``."""
    g = conv.groups
    n, c, h, w = s.shape
    per_group = s.reshape(n, g, c // g, h, w).sum(2)  # [N, g, H, W]
    ones = torch.ones(g, 1, *conv.kernel_size, dtype=s.dtype, device=s.device)
    cover = F.conv2d(per_group, ones, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=g)
    return float(cover.sum()) * (conv.out_channels // g)


def layer_macs(x: torch.Tensor, module: nn.Module, out: torch.Tensor) -> float:
    """FLOPs (multiply-accumulates) for one forward of ``module`` on ``x`` (all rows)."""
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        return float(out.numel() * k)
    return float(out.numel() * module.in_features)


def pool_area(module: nn.Module, x: torch.Tensor) -> float | None:
    """Input positions averaged into one output by a non-overlapping average pool (None:
    not such a pool)."""
    if isinstance(module, nn.AdaptiveAvgPool2d):
        out = module.output_size if isinstance(module.output_size, tuple) else (module.output_size,) * 2
        h, w = x.shape[-2:]
        oh, ow = (o if o is not None else d for o, d in zip(out, (h, w)))
        return (h / oh) * (w / ow) if h % oh == 0 and w % ow == 0 else None
    if isinstance(module, nn.AvgPool2d):
        k = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
        st = module.stride if isinstance(module.stride, tuple) else (module.stride or k[0],) * 2
        return float(k[0] * k[1]) if tuple(st) == tuple(k) and not module.padding else None
    return None


def fanout_sum(x: torch.Tensor, layer: nn.Module) -> float:
    """``sum_i x_i * fanout(i)`` of ``layer`` for a non-negative ``x`` (spikes, spike counts, or 0/1 masks)."""
    if isinstance(layer, nn.Conv2d):
        return conv_synops(x, layer)
    return float(x.sum()) * layer.out_features


def add_layer_counts(rec: LayerCounts, layer: nn.Module, x: torch.Tensor, out: torch.Tensor,
                     kind: str, area: float, T: int) -> None:
    """Add one forward of ``layer`` on ``x`` (all rows, all steps) to ``rec``: SynOps and
    events of spikes (pooled spikes: ``round(x * area)`` spike counts), MACs and events
    (non-zero values) of a real input, and the one-step dense FLOPs (snnkd.energy)."""
    flops = layer_macs(x, layer, out)
    rec.dense_macs += flops / T
    if kind == "real":
        rec.macs += flops
        rec.events += fanout_sum((x != 0).to(x.dtype), layer)
        return
    counts = torch.round(x * area) if area != 1.0 else x
    synops = fanout_sum(counts, layer)
    rec.synops += synops
    rec.events += synops


@torch.no_grad()
def count_ops(model: StagedNet, batches, device: torch.device | str = "cpu") -> Counts:
    """Run ``model`` on the given ``(x, y)`` batches and count per-sample operations
    (:class:`snnkd.energy.Counts`, priced by :func:`snnkd.energy.price`)."""
    T = model.T
    spiking = model.is_spiking
    report = Counts(spiking=spiking, T=T)
    handles = []
    # tensors that are spikes scaled by 1/scale (pooled or flattened spikes): id -> (tensor, scale)
    scaled: dict[int, tuple[torch.Tensor, float]] = {}

    def spike_scale(x: torch.Tensor) -> float | None:
        if id(x) in scaled and scaled[id(x)][0] is x:
            return scaled[id(x)][1]
        return 1.0 if spiking and is_binary(x) else None

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            report.layers[name] = LayerCounts(name, type(m).__name__)

            def hook(mod, inp, out, name=name):
                x, rec = inp[0], report.layers[name]
                scale = spike_scale(x)
                kind = "real" if scale is None else ("spikes" if scale == 1.0 else "pooled spikes")
                if rec.input == "real" or kind != "real":
                    rec.input = kind
                add_layer_counts(rec, mod, x, out, kind, scale or 1.0, T)
                if kind != "real":
                    rec.input_rate += float(torch.round(x.float() * scale).mean() / scale) * x.shape[0]
            handles.append(m.register_forward_hook(hook))
        elif isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)):
            def phook(mod, inp, out):
                scale = spike_scale(inp[0])
                area = 1.0 if isinstance(mod, nn.Flatten) else pool_area(mod, inp[0])
                if scale is not None and area is not None:
                    scaled[id(out)] = (out, scale * area)
            handles.append(m.register_forward_hook(phook))
        elif isinstance(m, SpikingNeuron):
            report.firing_rates[name] = 0.0
            report.neurons[name] = 0.0

            def nhook(mod, inp, out, name=name):
                unit = float(getattr(mod, "spike_value", 1.0))  # a converted neuron's spikes carry lambda
                if unit != 1.0:
                    scaled[id(out)] = (out, 1.0 / unit)  # counted as spikes (snnkd.convert.ScaledIF)
                report.firing_rates[name] += float(out.float().mean()) / unit * out.shape[0]  # bf16 spikes: fp32 sum
                report.neurons[name] += float(out.numel())
            handles.append(m.register_forward_hook(nhook))
    was_training = model.training
    model.eval()
    rows = 0
    try:
        for x, _ in batches:
            logits = model(x.to(device))
            scaled.clear()
            report.samples += len(x)
            report.output_neurons = float(logits.shape[-1] * T)
            rows += len(x) * T
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    n = max(report.samples, 1)
    for rec in report.layers.values():
        rec.synops /= n
        rec.macs /= n
        rec.events /= n
        rec.dense_macs /= n
        rec.input_rate = rec.input_rate / max(rows, 1) if rec.spiking_input else 0.0
    for k in report.firing_rates:
        report.firing_rates[k] /= max(rows, 1)
        report.neurons[k] /= n
    return report
