"""Reading ``.nir`` files safely, and checking an exported graph against the PyTorch SNN.

Three runs of the same encoded inputs ``x_t`` (``t = 1..T``), each giving per-step
outputs ``y_t`` (logits ``= mean_t y_t``) and the spikes of every neuron node:

* **reference**: the trained model itself, one step per call (BatchNorm not folded);
* **nirtorch**: the file read with ``nir.read`` and rebuilt with ``nirtorch.nir_to_torch``,
  neurons given by :class:`NirNeuron`, which integrates NIR's equations directly
  (forward Euler over ``dt``: IF ``v += dt r I``; LIF ``v += dt/tau (v_leak - v + r I)``;
  spike if ``v > v_threshold``; then ``v = v_reset``);
* **third party**: spikingjelly's ``import_from_nir`` (installed only with the test extra).

Two more peer readers are checked in tests/test_nir_peers.py, so three third-party tools read
our graphs: spikingjelly, norse (``norse.torch.from_nir``) and sinabs (``sinabs.from_nir``).

Agreement = fraction of equal spikes per neuron layer, ``max |logits - logits_ref|`` and
the fraction of samples whose predicted class agrees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import h5py
import nir
import nirtorch
import numpy as np
import torch
from torch import nn

from snnkd import safeload
from snnkd.errors import SnnkdError
from snnkd.models.base import StagedNet
from snnkd.neurons import SpikingNeuron, reset_net
from snnkd.safeload import check_same_shape, checked_array

# What snnkd's exporter writes and its re-import, energy count and Loihi build can run.
RUNNABLE_NODES = (nir.Input, nir.Output, nir.Conv2d, nir.Affine, nir.IF, nir.LIF, nir.AvgPool2d, nir.Flatten)


def read_nir(path: str | Path) -> nir.NIRGraph:
    """``nir.read`` with one clear error for a missing, truncated or foreign file."""
    path = safeload.check_hdf5_path(path, "NIR", "a NIR file")
    with safeload.unreadable_as(path, "NIR graph"):  # h5py/nir raise many types on damaged files
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise SnnkdError(f"{path} is an HDF5 file but not a NIR graph (no 'node' group)")
        safeload.check_hdf5(path)  # declared shapes and dtypes, before nir.read allocates anything
        graph = nir.read(str(path))
    if not isinstance(graph, nir.NIRGraph) or not graph.nodes:
        raise SnnkdError(f"{path} holds no NIR graph")
    unsupported = sorted({type(n).__name__ for n in graph.nodes.values() if type(n) not in RUNNABLE_NODES})
    if unsupported:
        raise SnnkdError(f"{path} has NIR node types snnkd cannot run: {', '.join(unsupported)} "
                         f"(it runs {', '.join(sorted(t.__name__ for t in RUNNABLE_NODES))})")
    check_graph(graph, path)
    return graph


MAX_NODE_ELEMENTS = safeload.MAX_ARRAY_ELEMENTS


def check_node(name: str, node: nir.NIRNode, path: object) -> None:
    """Types, dimensions and ranges of one runnable node's attributes; one error naming it."""
    w = f"{path}: node {name!r}"
    if isinstance(node, (nir.Input, nir.Output)):
        types = node.input_type if isinstance(node, nir.Input) else node.output_type
        for v in types.values():
            shape = checked_array(v, f"{w} shape", (1,), integer=True, low=1)
            if not 1 <= shape.size <= 3 or int(np.prod(shape, dtype=object)) > MAX_NODE_ELEMENTS:
                raise SnnkdError(f"{w} has an unusable shape {shape.tolist()}")
    elif isinstance(node, nir.Conv2d):
        weight = checked_array(node.weight, f"{w} weight", (4,))
        checked_array(node.bias, f"{w} bias", (0, 1))
        if np.ndim(node.bias) == 1 and np.shape(node.bias)[0] != weight.shape[0]:
            raise SnnkdError(f"{w}: bias has {np.shape(node.bias)[0]} values for {weight.shape[0]} channels")
        for k, low in (("stride", 1), ("dilation", 1), ("padding", 0)):
            if np.size(checked_array(getattr(node, k), f"{w} {k}", (0, 1), integer=True, low=low)) not in (1, 2):
                raise SnnkdError(f"{w} {k} must have one or two values")
        groups = int(checked_array(node.groups, f"{w} groups", (0,), integer=True, low=1))
        if weight.shape[0] % groups:
            raise SnnkdError(f"{w}: {weight.shape[0]} output channels do not divide into {groups} groups")
        if node.input_shape is not None:
            checked_array(node.input_shape, f"{w} input_shape", (1,), integer=True, low=1)
    elif isinstance(node, nir.Affine):
        weight = checked_array(node.weight, f"{w} weight", (2,))
        bias = checked_array(node.bias, f"{w} bias", (1,))
        if bias.shape[0] != weight.shape[0]:
            raise SnnkdError(f"{w}: bias has {bias.shape[0]} values for {weight.shape[0]} outputs")
    elif isinstance(node, (nir.IF, nir.LIF)):
        keys = ("r", "v_threshold", "v_reset") + (("tau", "v_leak") if isinstance(node, nir.LIF) else ())
        arrays = {k: checked_array(getattr(node, k), f"{w} {k}", (0, 1, 2, 3),
                                   low=0.0 if k in ("tau", "v_threshold") else None, strict=True) for k in keys}
        check_same_shape(w, **arrays)
    elif isinstance(node, nir.AvgPool2d):
        for k, low in (("kernel_size", 1), ("stride", 1), ("padding", 0)):
            if np.size(checked_array(getattr(node, k), f"{w} {k}", (0, 1), integer=True, low=low)) not in (1, 2):
                raise SnnkdError(f"{w} {k} must have one or two values")
    elif isinstance(node, nir.Flatten):
        for k in ("start_dim", "end_dim"):
            checked_array(getattr(node, k), f"{w} {k}", (0,), integer=True)


def _check_feed_forward(graph: nir.NIRGraph, path: object) -> None:
    """One input to one output without cycles: every node fed (but the input), every node
    feeding (but the output), and a topological order exists (nirtorch loops forever on a
    disconnected graph, or on the extra inputs and outputs nir.read adds to an edge-less one)."""
    for kind in (nir.Input, nir.Output):
        found = [n for n, node in graph.nodes.items() if isinstance(node, kind)]
        if len(found) != 1:
            raise SnnkdError(f"{path}: the graph has {len(found)} {kind.__name__} nodes; snnkd runs graphs "
                             f"with one input and one output")
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    indeg = dict.fromkeys(graph.nodes, 0)
    for a, b in graph.edges:
        succ[a].append(b)
        indeg[b] += 1
    for name, node in graph.nodes.items():
        if indeg[name] == 0 and not isinstance(node, nir.Input):
            raise SnnkdError(f"{path}: node {name!r} has no input edge")
        if not succ[name] and not isinstance(node, nir.Output):
            raise SnnkdError(f"{path}: node {name!r} feeds nothing")
        if isinstance(node, nir.Input) and indeg[name]:
            raise SnnkdError(f"{path}: input node {name!r} has an incoming edge")
    ready = [n for n, d in indeg.items() if d == 0]
    done = 0
    while ready:
        n = ready.pop()
        done += 1
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    if done != len(graph.nodes):
        raise SnnkdError(f"{path}: the graph has a cycle (snnkd runs feed-forward graphs)")


def check_graph(graph: nir.NIRGraph, path: object) -> None:
    """Every node's attributes (:func:`check_node`), the edges and ``metadata['dt']``."""
    for name, node in graph.nodes.items():
        check_node(name, node, path)
    for edge in graph.edges:
        if len(edge) != 2 or any(e not in graph.nodes for e in edge):
            raise SnnkdError(f"{path}: edge {edge!r:.80} names a node the graph lacks")
    _check_feed_forward(graph, path)
    if "dt" in graph.metadata:
        checked_array(graph.metadata["dt"], f"{path}: metadata dt", (0,), low=0.0, strict=True)


class NirNeuron(nn.Module):
    """A NIR IF/LIF node as a stateful step module: ``(x, state) -> (spikes, v)``."""

    def __init__(self, node: nir.IF | nir.LIF, dt: float) -> None:
        super().__init__()
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        self.is_lif = isinstance(node, nir.LIF)
        self.register_buffer("gain", t(node.r) * dt if not self.is_lif else t(node.r) * dt / t(node.tau))
        self.register_buffer("leak", dt / t(node.tau) if self.is_lif else torch.zeros(()))
        self.register_buffer("v_leak", t(node.v_leak) if self.is_lif else torch.zeros(()))
        self.register_buffer("thr", t(node.v_threshold))
        self.register_buffer("v_reset", t(node.v_reset))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.zeros_like(x) if state is None else state
        v = v + self.leak * (self.v_leak - v) + self.gain * x
        s = (v > self.thr).to(x.dtype)
        v = torch.where(s > 0, self.v_reset.expand_as(v), v)
        return s, v


def _flatten(node: nir.Flatten) -> nn.Flatten:
    shift = lambda d: d + 1 if d >= 0 else d  # noqa: E731  (NIR shapes have no batch axis)
    return nn.Flatten(shift(node.start_dim), shift(node.end_dim))


def _affine(node: nir.Affine) -> nn.Linear:
    """``y = W x + b`` (nirtorch 2.6's default Affine mapper leaves the bias at its random init)."""
    lin = nn.Linear(node.weight.shape[-1], node.weight.shape[-2], bias=True)
    lin.weight.data = torch.as_tensor(np.asarray(node.weight, np.float32))
    lin.bias.data = torch.as_tensor(np.asarray(node.bias, np.float32))
    return lin


def _conv2d(node: nir.Conv2d) -> nn.Conv2d:
    """A Conv2d with the right channel attributes (nirtorch 2.6's default mapper swaps
    ``in_channels`` and ``out_channels``; only its weight tensor is right)."""
    w = np.asarray(node.weight, np.float32)
    pair = lambda v: tuple(int(i) for i in np.broadcast_to(np.asarray(v), (2,)))  # noqa: E731
    conv = nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], w.shape[-2:], stride=pair(node.stride),
                     padding=pair(node.padding), dilation=pair(node.dilation), groups=int(node.groups), bias=True)
    conv.weight.data = torch.as_tensor(w)
    conv.bias.data = torch.as_tensor(np.asarray(node.bias, np.float32))
    return conv


def nirtorch_module(graph: nir.NIRGraph) -> nn.Module:
    """Rebuild ``graph`` as a torch module with ``nirtorch.nir_to_torch``."""
    dt = float(graph.metadata.get("dt", 1e-4))
    node_map: dict = {nir.IF: lambda n: NirNeuron(n, dt), nir.LIF: lambda n: NirNeuron(n, dt),
                      nir.Flatten: _flatten, nir.Affine: _affine, nir.Conv2d: _conv2d}
    return nirtorch.nir_to_torch(graph, node_map)


def spikingjelly_module(graph: nir.NIRGraph) -> nn.Module:
    """Rebuild ``graph`` with spikingjelly's ``import_from_nir`` (test extra only)."""
    try:
        from spikingjelly.activation_based.nir_exchange import import_from_nir
    except ImportError as e:
        raise SnnkdError(f"spikingjelly is not installed (pip install '.[nirtest]'): {e}") from None
    return import_from_nir(graph, dt=float(graph.metadata.get("dt", 1e-4)))


def spikingjelly_neuron_types() -> tuple[type, ...]:
    """The module types whose outputs are spikes in a :func:`spikingjelly_module` graph
    (spikingjelly keeps this class private; it is named here only, not in every caller)."""
    from spikingjelly.activation_based.nir_exchange.from_nir import _NIRStatefulModule
    return (_NIRStatefulModule,)


def _hook_spikes(mods: dict[str, nn.Module], store: dict[str, list[torch.Tensor]]) -> list:
    def make(name: str) -> Callable:
        def hook(mod, inp, out):
            s = out[0] if isinstance(out, tuple) else out
            store.setdefault(name, []).append(s.detach().clone())
        return hook
    return [m.register_forward_hook(make(n)) for n, m in mods.items()]


def spike_key(name: str) -> str:
    """Common key for a layer named by torch (``a.b.0``) or by a NIR node (``a_b_0``);
    the model's ``head.`` prefix is dropped (the exported step net holds the head's parts)."""
    return re.sub(r"[._]+", "_", re.sub(r"^head\.", "", name))


@torch.no_grad()
def run_reference(model: StagedNet, x_seq: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The trained model one step per call on ``x_seq [T, B, ...]``:
    ``(per-step outputs [T, B, K], {layer: spikes [T, B, ...]})``."""
    import copy

    from snnkd.export.deploy import StepNet
    net = StepNet(copy.deepcopy(model).eval().set_T(1))
    store: dict[str, list[torch.Tensor]] = {}
    hooks = _hook_spikes({spike_key(n): mod for n, mod in net.named_modules() if isinstance(mod, SpikingNeuron)}, store)
    reset_net(net)
    try:
        ys = torch.stack([net(x_seq[t]) for t in range(x_seq.shape[0])])
    finally:
        for h in hooks:
            h.remove()
    return ys, {k: torch.stack(v) for k, v in store.items()}


@torch.no_grad()
def run_graph_module(gm: nn.Module, x_seq: torch.Tensor, neuron_types: tuple[type, ...]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A re-imported graph module (``out, state = gm(x, state)``) over ``x_seq``."""
    store: dict[str, list[torch.Tensor]] = {}
    mods = {spike_key(n): m for n, m in gm.named_modules() if isinstance(m, neuron_types)}
    hooks = _hook_spikes(mods, store)
    state = None
    outs = []
    try:
        for t in range(x_seq.shape[0]):
            y, state = gm(x_seq[t], state)
            outs.append(y)
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(outs), {k: torch.stack(v) for k, v in store.items()}


class Agreement:
    """:func:`agreement` accumulated over batches, so any number of test samples is checked
    in bounded memory: equal-spike counts per layer, the largest logit error, and the counts
    of agreeing predictions and correct labels."""

    def __init__(self) -> None:
        self.equal: dict[str, int] = {}
        self.count: dict[str, int] = {}
        self.max_err, self.agree, self.correct, self.correct_ref, self.samples = 0.0, 0, 0, 0, 0
        self.labelled = True

    def add(self, ref: tuple[torch.Tensor, dict[str, torch.Tensor]], other: tuple[torch.Tensor, dict[str, torch.Tensor]],
            labels: torch.Tensor | None = None) -> None:
        (y_ref, s_ref), (y, s) = ref, other
        missing = sorted(set(s_ref) - set(s))
        if missing:
            raise SnnkdError(f"re-imported graph lacks neuron layers {missing}")
        for k in s_ref:
            self.equal[k] = self.equal.get(k, 0) + int((s[k] == s_ref[k]).sum())
            self.count[k] = self.count.get(k, 0) + s_ref[k].numel()
        z_ref, z = y_ref.mean(0), y.mean(0)
        self.max_err = max(self.max_err, float((z - z_ref).abs().max()))
        self.agree += int((z.argmax(1) == z_ref.argmax(1)).sum())
        self.samples += len(z)
        if labels is None:
            self.labelled = False
        else:
            self.correct += int((z.argmax(1) == labels).sum())
            self.correct_ref += int((z_ref.argmax(1) == labels).sum())

    def result(self) -> dict:
        total, count = sum(self.equal.values()), sum(self.count.values())
        out = {"spike_agreement": total / max(count, 1),
               "spike_agreement_per_layer": {k: self.equal[k] / max(self.count[k], 1) for k in self.equal},
               "spikes_compared": count, "logits_max_abs_error": self.max_err,
               "prediction_agreement": self.agree / max(self.samples, 1)}
        if self.labelled:
            out["accuracy"] = self.correct / max(self.samples, 1)
            out["accuracy_reference"] = self.correct_ref / max(self.samples, 1)
        return out


def agreement(ref: tuple[torch.Tensor, dict[str, torch.Tensor]], other: tuple[torch.Tensor, dict[str, torch.Tensor]],
              labels: torch.Tensor | None = None) -> dict:
    """Spike agreement per layer, logit error and prediction agreement of ``other`` vs ``ref``."""
    acc = Agreement()
    acc.add(ref, other, labels)
    return acc.result()
