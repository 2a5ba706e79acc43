"""The quantised Loihi network as Lava processes, and its file form.

Processes (all Lava's own): ``RingBuffer`` (the graded input ``x_q``, one sample per
``T`` steps), ``Conv``/``Dense`` synapses, ``LIFReset`` neurons.  Lava's axes are
``(x, y, z) = (W, H, C)``: a torch tensor ``(C, H, W)`` is transposed, a conv kernel
``(out, in, kH, kW)`` becomes ``w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)`` (Lava's
conv flips the kernel relative to torch), stride/padding are given as ``(x, y)``.  A
dense synapse reading a ``(W, H, C)`` source flattens it in torch ``C, H, W`` order.

Timing: every synapse delays by one step, so a layer of depth ``d`` sees sample ``k``'s
step ``t`` (1-based) at Lava step ``k T + t + d``; it resets ``u, v`` at
``time_step % T == (1 + d) % T``, i.e. on the first step of each sample's window, so
samples stream back to back.  Residual joins carry relay stages (``relays``) so every
path into a layer has the same delay; ``Dense``/``Conv`` inputs into one neuron are summed.

A residual net has no netx form; its deployment artefact is ``network.json`` (layers,
synapses, scales, depths) plus ``network.npz`` (integer weights and biases), which
:func:`load_net` reads back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from snnkd import io
from snnkd.errors import SnnkdError
from snnkd.export.loihi.layers import Layer, LoihiNet, Synapse
from snnkd.export.loihi.quant import BIAS_EXP

INPUT_MESSAGE_BITS = 8
RELAY_WEIGHT, RELAY_VTH = 2, 1   # one spike: v = 2 << 6 > 1 << 6


def to_xyz(a: np.ndarray) -> np.ndarray:
    """torch ``(..., C, H, W)`` -> Lava ``(..., W, H, C)``."""
    return np.moveaxis(a, (-3, -2, -1), (-1, -2, -3))


def lava_kernel(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


# ------------------------------------------------------------------ file form
def save_net(net: LoihiNet, out_dir: str | Path) -> None:
    """``network.json`` + ``network.npz`` (integers only) in ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    meta = {"format": "snnkd-loihi/1", "input_shape": list(net.input_shape), "T": net.T,
            "input_bits": net.input_bits, "layers": []}
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(net.layers):
        d = {k: v for k, v in asdict(layer).items() if k not in ("synapses", "bias", "bias_q", "bias_exp")}
        d["shape"] = list(layer.shape)
        d["threshold"] = d["threshold"] if math.isfinite(d["threshold"]) else None  # output layer: inf; strict JSON
        d["synapses"] = []
        arrays[f"l{i}_bias_q"] = layer.bias_q
        arrays[f"l{i}_bias"] = layer.bias
        if layer.bias_exp is not None:
            arrays[f"l{i}_bias_exp"] = layer.bias_exp
        for j, s in enumerate(layer.synapses):
            sd = {k: v for k, v in asdict(s).items() if k not in ("weight", "w_q")}
            d["synapses"].append(sd)
            arrays[f"l{i}_s{j}_w_q"] = s.w_q
            arrays[f"l{i}_s{j}_w"] = s.weight
        meta["layers"].append(d)
    with io.atomic_path(out_dir / "network.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    io.write_json(out_dir / "network.json", meta)


def load_net(out_dir: str | Path) -> LoihiNet:
    out_dir = Path(out_dir)
    try:
        meta = json.loads((out_dir / "network.json").read_text())
        arrays = np.load(out_dir / "network.npz", allow_pickle=False)
        layers = []
        for i, d in enumerate(meta["layers"]):
            syns = [Synapse(**{**sd, "stride": tuple(sd["stride"]), "padding": tuple(sd["padding"]),
                               "dilation": tuple(sd["dilation"]), "weight": arrays[f"l{i}_s{j}_w"],
                               "w_q": arrays[f"l{i}_s{j}_w_q"]}) for j, sd in enumerate(d.pop("synapses"))]
            if d.get("threshold") is None:  # written as null: a layer that never fires
                d["threshold"] = math.inf
            layers.append(Layer(**{**d, "shape": tuple(d["shape"]), "synapses": syns,
                                   "bias": arrays[f"l{i}_bias"], "bias_q": arrays[f"l{i}_bias_q"],
                                   "bias_exp": arrays[f"l{i}_bias_exp"] if f"l{i}_bias_exp" in arrays else None}))
        return LoihiNet(layers, tuple(meta["input_shape"]), int(meta["T"]), int(meta["input_bits"]))
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise SnnkdError(f"{out_dir}: not a readable snnkd Loihi network: {type(e).__name__}: {e}") from None


# ------------------------------------------------------------------ processes
def _lif(shape_xyz: tuple[int, ...], vth: int, dv: int, bias_q: np.ndarray | None, depth: int, T: int, name: str,
         bias_exp: np.ndarray | None = None):
    from lava.proc.lif.process import LIFReset

    def per_neuron(a: np.ndarray | None, fill: int) -> np.ndarray:
        out = np.full(shape_xyz, fill, np.int32)
        if a is not None:
            out[...] = a if len(shape_xyz) == 1 else a.reshape(1, 1, -1)  # per channel (z)
        return out
    return LIFReset(shape=shape_xyz, vth=int(vth), du=4095, dv=int(dv), bias_mant=per_neuron(bias_q, 0),
                    bias_exp=per_neuron(bias_exp, BIAS_EXP),
                    reset_interval=T, reset_offset=(1 + depth) % T, name=name)


def _conv(w: np.ndarray, in_xyz, syn: Synapse, graded: bool, name: str):
    from lava.proc.conv.process import Conv
    return Conv(weight=lava_kernel(w).astype(np.int32), input_shape=tuple(in_xyz),
                padding=syn.padding[::-1], stride=syn.stride[::-1], dilation=syn.dilation[::-1],
                groups=syn.groups, num_message_bits=INPUT_MESSAGE_BITS if graded else 0, name=name)


def _connect_flat(out_port, in_port, xyz: bool) -> None:
    """Connect, flattening a ``(W, H, C)`` port in torch ``C, H, W`` order for a dense input."""
    (out_port.transpose([2, 1, 0]).flatten() if xyz else out_port).connect(in_port)


def build_graph(net: LoihiNet, source) -> dict[str, object]:
    """Create the Lava processes of ``net`` driven by ``source`` (an OutPort of shape
    ``to_xyz(input_shape)``).  Returns ``{layer name: LIFReset process}``."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense

    ports = {"input": (source, tuple(to_xyz(np.zeros(net.input_shape)).shape), 0)}
    neurons: dict[str, object] = {}
    for layer in net.layers:
        xyz = tuple(to_xyz(np.zeros(layer.shape)).shape) if len(layer.shape) == 3 else layer.shape
        lif = _lif(xyz, layer.vth, layer.dv, layer.bias_q, layer.depth, net.T, layer.name, layer.bias_exp)
        for j, syn in enumerate(layer.synapses):
            port, in_xyz, depth = ports[syn.src]
            for r in range(syn.relays):  # identity stages: same shape, one step each
                c = in_xyz[-1]
                if len(in_xyz) == 3:
                    eye = np.zeros((c, c, 1, 1), np.int32)
                    eye[np.arange(c), np.arange(c)] = RELAY_WEIGHT
                    rs = Conv(weight=eye.transpose(0, 3, 2, 1), input_shape=in_xyz, name=f"{layer.name}_s{j}_relay{r}_w")
                else:
                    rs = Dense(weights=np.eye(c, dtype=np.int32) * RELAY_WEIGHT, name=f"{layer.name}_s{j}_relay{r}_w")
                port.connect(rs.s_in)
                depth += 1
                relay = _lif(in_xyz, RELAY_VTH, 0, None, depth, net.T, f"{layer.name}_s{j}_relay{r}")
                rs.a_out.connect(relay.a_in)
                port = relay.s_out
            if syn.kind == "conv":
                proc = _conv(syn.w_q, in_xyz, syn, syn.src == "input", f"{layer.name}_s{j}")
                port.connect(proc.s_in)
            else:
                proc = Dense(weights=syn.w_q.astype(np.int32), name=f"{layer.name}_s{j}",
                             num_message_bits=INPUT_MESSAGE_BITS if syn.src == "input" else 0)
                _connect_flat(port, proc.s_in, len(in_xyz) == 3 and syn.flatten)
            if depth + 1 != layer.depth:
                raise SnnkdError(f"{layer.name}: synapse from {syn.src} arrives at depth {depth + 1}, "
                                 f"layer depth {layer.depth}")
            proc.a_out.connect(lif.a_in)
        ports[layer.name] = (lif.s_out, xyz, layer.depth)
        neurons[layer.name] = lif
    return neurons
