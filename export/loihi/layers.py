"""The layer graph of a Loihi network, read from a NIR graph (:func:`from_nir`).

Every IF/LIF node becomes a neuron *layer*; the ``Conv2d``/``Affine`` nodes feeding it
become its *synapses* (several for a residual join: Loihi sums their currents). ``Flatten``
becomes a flattened read of the source (torch ``C, H, W`` order); a global ``AvgPool2d``
before an ``Affine`` is folded into its weights (``W'[k, c, h, w] = W[k, c] / (H W)``). The
``Output`` node's ``Affine`` becomes an output layer of non-spiking neurons whose membrane
accumulates the logits. The input arrives as graded spikes ``x_q = round(x 2^q)`` (signed
8-bit; ``q`` from :func:`snnkd.export.loihi.quant.choose_input_bits`). Every synapse adds
one time step of delay, so a layer's *depth* is ``1 + max depth of its sources``; a
shallower path into a join gets identity *relay* stages (identity weights, threshold below
one spike). An identity shortcut (a direct neuron-to-neuron edge: spikes add to the membrane
with weight 1) becomes a 1x1 convolution with the identity kernel.

:mod:`snnkd.export.loihi.quant` chooses its fixed-point parameters and emulates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from snnkd.errors import SnnkdError
from snnkd.export.loihi.folding import Pool, fold_pool_into_conv, fold_pool_into_dense


@dataclass
class Synapse:
    """Connection from ``src`` (a layer name or ``"input"``) into a layer."""

    src: str
    kind: str                       # "conv" or "dense"
    weight: np.ndarray              # float; conv (out, in, kh, kw), dense (out, in)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    flatten: bool = False           # dense reading its source flattened (C, H, W)
    relays: int = 0                 # identity stages inserted to equalise delays
    w_q: np.ndarray | None = None   # integer weights (after quantisation)


@dataclass
class Layer:
    """A population of Loihi neurons (``kind`` ``"if"``, ``"lif"`` or ``"out"``)."""

    name: str
    shape: tuple[int, ...]          # (C, H, W) or (N,)
    kind: str
    threshold: float
    beta: float
    bias: np.ndarray                # float, per channel (conv) or per neuron (dense)
    synapses: list[Synapse] = field(default_factory=list)
    depth: int = 0
    scale: float = 0.0
    vth: int = 0
    dv: int = 0
    bias_q: np.ndarray | None = None
    bias_exp: np.ndarray | None = None  # per channel/neuron, in [BIAS_EXP, BIAS_EXP_MAX]; None: all BIAS_EXP


@dataclass
class LoihiNet:
    layers: list[Layer]             # topological order; the last is the output layer
    input_shape: tuple[int, int, int]
    T: int
    input_bits: int = 5             # x_q = round(x * 2^input_bits)

    @property
    def sequential(self) -> bool:
        """One synapse per layer, each fed by the layer before (netx expresses it)."""
        prev = "input"
        for layer in self.layers:
            if len(layer.synapses) != 1 or layer.synapses[0].src != prev:
                return False
            prev = layer.name
        return True

    def layer(self, name: str) -> Layer:
        return next(lay for lay in self.layers if lay.name == name)


def _pair(v) -> tuple[int, int]:
    a = np.broadcast_to(np.asarray(v).astype(int), (2,))
    return int(a[0]), int(a[1])


def from_nir(graph: nir.NIRGraph, T: int) -> LoihiNet:
    """The Loihi layer graph of a NIR graph exported by :mod:`snnkd.export.nir_export`."""
    preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for s, d in graph.edges:
        preds[d].append(s)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise SnnkdError("a Loihi network needs exactly one input and one output node")
    in_shape = tuple(int(v) for v in graph.nodes[inputs[0]].input_type["input"])

    def sources(name: str) -> list[tuple[str, bool, list[Pool]]]:
        """Walk back from a synapse node to the neuron layers (or 'input') it reads: one
        (source, flattened, average poolings passed, nearest first) per path.  A node with
        several inputs sums them (a spike-element-wise residual join, SEW-ResNet's ADD):
        ``W (s_1 + s_2) = W s_1 + W s_2``, so every path becomes a synapse of its own."""

        def walk(node: str, flat: bool, pools: tuple[Pool, ...]) -> list[tuple[str, bool, list[Pool]]]:
            if not preds[node]:
                raise SnnkdError(f"node {node} has no input; Loihi export expects one")
            found = []
            for src in preds[node]:
                n = graph.nodes[src]
                if isinstance(n, (nir.IF, nir.LIF)):
                    found.append((src, flat, list(pools)))
                elif isinstance(n, nir.Input):
                    found.append(("input", flat, list(pools)))
                elif isinstance(n, nir.Flatten):
                    found += walk(src, True, pools)
                elif isinstance(n, nir.AvgPool2d):
                    if np.any(np.asarray(n.padding) != 0):
                        raise SnnkdError(f"pooling {src} with padding is not supported on Loihi")
                    found += walk(src, flat, (*pools, Pool(src, _pair(n.kernel_size), _pair(n.stride))))
                else:
                    raise SnnkdError(f"node {src} ({type(n).__name__}) between layers is not supported on Loihi")
            return found

        return walk(name, False, ())

    shapes: dict[str, tuple[int, ...]] = {"input": in_shape}
    layers: list[Layer] = []
    order = _topological(graph)
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, (nir.IF, nir.LIF)):
            kind, thr = ("if", 1.0) if isinstance(node, nir.IF) else ("lif", 0.0)
            dt = float(node.metadata.get("dt", graph.metadata.get("dt", 1e-4)))
            beta = 1.0 if isinstance(node, nir.IF) else float(1.0 - dt / np.asarray(node.tau).flat[0])
            if node.metadata.get("reset", "hard") != "hard":
                raise SnnkdError("Loihi resets to zero: a soft-reset student cannot be exported (train with --reset hard)")
            if np.any(np.asarray(node.v_reset) != 0) or np.ptp(np.asarray(node.v_threshold)) > 0:
                raise SnnkdError(f"{name}: Loihi needs v_reset = 0 and one threshold per layer")
            shape = tuple(int(v) for v in np.asarray(node.v_threshold).shape)
            layer = Layer(name, shape, kind, float(np.asarray(node.v_threshold).flat[0]), beta,
                          np.zeros(shape[0], np.float64))
            for syn_name in preds[name]:
                if isinstance(graph.nodes[syn_name], (nir.IF, nir.LIF)):  # identity shortcut: spikes add to v
                    c = shapes[syn_name][0]
                    if shapes[syn_name] != shape:
                        raise SnnkdError(f"identity edge {syn_name} -> {name} changes shape")
                    eye = np.eye(c)[:, :, None, None] if len(shape) == 3 else np.eye(c)
                    layer.synapses.append(Synapse(syn_name, "conv" if len(shape) == 3 else "dense", eye))
                else:
                    layer.synapses += _synapses(graph, syn_name, sources, shapes, layer)
            layers.append(layer)
            shapes[name] = shape
        elif isinstance(node, nir.Output):
            (fc,) = preds[name]
            if not isinstance(graph.nodes[fc], nir.Affine):
                raise SnnkdError("the output must be read from a linear layer")
            k = int(graph.nodes[fc].weight.shape[0])
            layer = Layer("output", (k,), "out", float("inf"), 1.0, np.zeros(k, np.float64))
            layer.synapses += _synapses(graph, fc, sources, shapes, layer)
            layers.append(layer)
    net = LoihiNet(layers, in_shape, T)
    _set_depths(net)
    return net


def _synapses(graph, name, sources, shapes, layer: Layer) -> list[Synapse]:
    """The synapses of NIR node ``name`` (one per source path) into ``layer``; its bias once."""
    syns = [_synapse(graph.nodes[name], name, path, shapes) for path in sources(name)]
    layer.bias += np.asarray(graph.nodes[name].bias, np.float64)
    return syns


def _synapse(n, name: str, path: tuple[str, bool, list[Pool]], shapes) -> Synapse:
    src, flat, pools = path
    if isinstance(n, nir.Conv2d):
        if flat:
            raise SnnkdError(f"{name}: a flattened input cannot feed a convolution on Loihi")
        if np.any(np.asarray(n.dilation) != 1) and pools:
            raise SnnkdError(f"{name}: a dilated convolution after pooling is not supported on Loihi")
        w, stride, padding = np.asarray(n.weight, np.float64), _pair(n.stride), _pair(n.padding)
        hw = [shapes[src][1:]]  # the map's size before each pooling, farthest first
        for pool in reversed(pools[1:]):
            hw.append(tuple(v // k for v, k in zip(hw[-1], pool.kernel)))
        for pool, in_hw in zip(pools, reversed(hw)):  # nearest pooling first
            w, stride, padding = fold_pool_into_conv(w, stride, padding, pool, in_hw)
        syn = Synapse(src, "conv", w, stride, padding, _pair(n.dilation), int(n.groups))
    elif isinstance(n, nir.Affine):
        w = np.asarray(n.weight, np.float64)
        src_shape = shapes[src]
        if pools:  # average pooling (global or not) folded into the weights
            w = fold_pool_into_dense(w, pools, src_shape, name)
            flat = True
        syn = Synapse(src, "dense", w, flatten=flat or len(src_shape) > 1)
    else:
        raise SnnkdError(f"{name} ({type(n).__name__}) cannot feed neurons on Loihi")
    return syn


def _topological(graph: nir.NIRGraph) -> list[str]:
    indeg = {k: 0 for k in graph.nodes}
    for _, d in graph.edges:
        indeg[d] += 1
    ready = [k for k, v in indeg.items() if v == 0]
    order = []
    while ready:
        k = ready.pop(0)
        order.append(k)
        for s, d in graph.edges:
            if s == k:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
    if len(order) != len(graph.nodes):
        raise SnnkdError("the NIR graph has a cycle; recurrent nets are not supported on Loihi")
    return order


def _set_depths(net: LoihiNet) -> None:
    depth = {"input": 0}
    for layer in net.layers:
        srcs = [depth[s.src] for s in layer.synapses]
        layer.depth = 1 + max(srcs)
        for s in layer.synapses:
            s.relays = max(srcs) - depth[s.src]
            layer.depth = max(layer.depth, 1 + depth[s.src] + s.relays)
        depth[layer.name] = layer.depth
