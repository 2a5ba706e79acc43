"""Export a trained snnkd SNN to NIR with ``nirtorch.torch_to_nir``.

The graph is one time step of the network (:class:`snnkd.export.deploy.StepNet`, BatchNorm
folded); a run over ``T`` steps feeds the same encoded input each step (direct encoding)
and averages the output node over the steps to get the logits.

Neuron mapping with step ``dt`` (seconds, recorded in the graph metadata).  snnkd's
discrete neuron is ``h_t = beta v_{t-1} + x_t``, spike ``s_t = [h_t > theta]``, then
``v_t = 0`` (hard reset).  NIR's continuous neurons, integrated by forward Euler over ``dt``:

* IF  ``dv/dt = R I``: ``v += dt R I``, so ``beta = 1`` is IF with ``r = 1/dt``.
* LIF ``tau dv/dt = (v_leak - v) + R I``: ``v = (1 - dt/tau) v + (dt R / tau) I``, so
  ``tau = dt / (1 - beta)``, ``r = tau / dt``, ``v_leak = 0``.

Both spike when ``v > v_threshold`` and reset to ``v_reset = 0``.  NIR has no soft
(subtractive) reset: a soft-reset model still exports, its nodes record
``metadata["reset"] = "soft"``, and readers will apply a hard reset.

Other nodes: ``Conv2d`` (weights and folded bias), ``Affine`` (linear + bias),
``AvgPool2d`` (also for global pooling), ``Flatten`` (``start_dim = 0``: NIR shapes have no
batch axis), and every residual addition becomes two edges into the consumer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nir
import nirtorch
import numpy as np
from torch import nn

from snnkd import io
from snnkd.errors import SnnkdError
from snnkd.export.deploy import StepNet, input_shape, record_shapes, step_net
from snnkd.models.base import StagedNet
from snnkd.neurons import SpikingNeuron

DEFAULT_DT = 1e-4  # seconds per time step; the default of most NIR readers
FORMAT = "snnkd-nir/1"


def _arr(x) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float32)


def neuron_node(mod: SpikingNeuron, shape: tuple[int, ...], dt: float) -> nir.NIRNode:
    """IF or LIF node for ``mod`` over neurons of ``shape`` (see module docstring)."""
    c = mod.cfg
    beta = c.beta
    meta = {"reset": c.reset, "spike_condition": "v > v_threshold", "dt": dt, "beta": beta, "kind": c.kind}
    thr = np.full(shape, c.threshold, np.float32)
    if beta == 1.0:
        return nir.IF(r=np.full(shape, 1.0 / dt, np.float32), v_threshold=thr,
                      v_reset=np.zeros(shape, np.float32), metadata=meta)
    if not 0.0 < beta < 1.0:
        raise SnnkdError(f"a LIF with retention beta={beta} has no NIR time constant (need 0 < beta < 1)")
    tau = dt / (1.0 - beta)
    return nir.LIF(tau=np.full(shape, tau, np.float32), r=np.full(shape, tau / dt, np.float32),
                   v_leak=np.zeros(shape, np.float32), v_threshold=thr,
                   v_reset=np.zeros(shape, np.float32), metadata=meta)


def module_map(net: StepNet, shape: tuple[int, int, int], dt: float) -> dict[type, Callable[[nn.Module], nir.NIRNode]]:
    """torch module type -> NIR node builder, with shapes from one dummy forward."""
    shapes = record_shapes(net, shape)

    def conv(m: nn.Conv2d) -> nir.NIRNode:
        bias = _arr(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
        if not isinstance(m.padding, tuple):
            raise SnnkdError(f"conv padding {m.padding!r} is not exportable; use integer padding")
        return nir.Conv2d(input_shape=shapes[id(m)][0][1:], weight=_arr(m.weight), stride=m.stride,
                          padding=m.padding, dilation=m.dilation, groups=m.groups, bias=bias)

    def linear(m: nn.Linear) -> nir.NIRNode:
        bias = _arr(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
        return nir.Affine(weight=_arr(m.weight), bias=bias)

    def avgpool(m: nn.AvgPool2d) -> nir.NIRNode:
        pair = lambda v: np.array(v if isinstance(v, tuple) else (v, v))  # noqa: E731
        if m.ceil_mode or (not m.count_include_pad and m.padding not in (0, (0, 0))):
            raise SnnkdError(f"{m} is not exportable (ceil_mode / count_include_pad)")
        return nir.AvgPool2d(kernel_size=pair(m.kernel_size), stride=pair(m.stride or m.kernel_size),
                             padding=pair(m.padding))

    def flatten(m: nn.Flatten) -> nir.NIRNode:
        if m.start_dim != 1 or m.end_dim != -1:
            raise SnnkdError("only Flatten(1, -1) is exportable")
        return nir.Flatten(input_type={"input": np.array(shapes[id(m)][0])}, start_dim=0, end_dim=-1)

    def neuron(m: SpikingNeuron) -> nir.NIRNode:
        return neuron_node(m, shapes[id(m)][0], dt)

    names = {id(m): n for n, m in net.named_modules()}

    def unsupported(m: nn.Module) -> nir.NIRNode:
        why = ("NIR and Loihi have no max pooling; train the student with average pooling or a strided "
               "convolution" if isinstance(m, nn.MaxPool2d) else "no NIR node expresses it")
        raise SnnkdError(f"layer {names.get(id(m), '?')!r} ({type(m).__name__}) cannot be exported to NIR: {why}")

    out: dict[type, Callable[[nn.Module], nir.NIRNode]] = {
        nn.Conv2d: conv, nn.Linear: linear, nn.AvgPool2d: avgpool, nn.Flatten: flatten, SpikingNeuron: neuron}
    for t in (nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.Identity, nn.AdaptiveAvgPool2d):
        out.setdefault(t, unsupported)
    return out


def to_nir(model: StagedNet, meta: dict | None = None, dt: float = DEFAULT_DT) -> nir.NIRGraph:
    """NIR graph of one time step of ``model`` (an SNN), with run metadata."""
    if not model.is_spiking:
        raise SnnkdError("NIR export needs an SNN (spiking student); this model is an ANN")
    net = step_net(model)
    shape = input_shape(model)
    try:
        graph = nirtorch.torch_to_nir(net, module_map(net, shape, dt), default_dict={})
    except (ValueError, KeyError, AssertionError) as e:
        raise SnnkdError(f"NIR export failed: {e}") from None
    names = {str(k) for k in graph.nodes}
    for node in graph.nodes.values():
        if isinstance(node, nir.Input):
            node.input_type = {"input": np.array(shape)}
            node.output_type = {"output": np.array(shape)}
        if isinstance(node, nir.Output):
            k = int(model.head.fc.out_features)
            node.input_type = {"input": np.array([k])}
            node.output_type = {"output": np.array([k])}
    graph.metadata = {
        "format": FORMAT, "dt": dt, "T": int(model.T), "readout": "mean of the output node over T steps",
        "encoding": getattr(model.encoder, "name", "direct"), "arch": getattr(model, "arch", ""),
        "reset": _reset_mode(model), "spike_condition": "v > v_threshold",
        "dataset": (meta or {}).get("dataset", ""), "nodes": len(names),
    }
    return graph


def _reset_mode(model: nn.Module) -> str:
    modes = {m.cfg.reset for m in model.modules() if isinstance(m, SpikingNeuron)}
    return modes.pop() if len(modes) == 1 else "mixed"


def write_nir(graph: nir.NIRGraph, path: str | Path) -> None:
    """``nir.write`` into memory, then to a temporary file beside ``path`` renamed into place
    on success (HDF5 itself never meets a full disk: that can crash the interpreter)."""
    from io import BytesIO

    buf = BytesIO()
    nir.write(buf, graph)
    io.write_bytes(path, buf.getvalue())


__all__ = ["to_nir", "write_nir", "neuron_node", "DEFAULT_DT"]
