"""lava-dl netx HDF5 for a sequential quantised Loihi network, and a checked reader.

Layout written (all datasets; see ``shared/reference/lava.md``): ``/layer/0..n-1`` with
``type`` (``conv``, ``flatten``, ``dense``) and ``shape`` in torch order; conv: integer
``weight (out, in, kH, kW)``, ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``
(per channel, bias mantissa); dense: integer ``weight (out, in)``, ``bias``; every
conv/dense has ``neuron/`` with ``type = CUBA``, ``vThMant``, ``iDecay = 4096`` (the
current is this step's input), ``vDecay``.  Layer 0 is ``input`` with
only a ``shape`` (no neuron): the input arrives as graded spikes into the first conv
(``Network(..., input_message_bits=8)``).  The output
layer's threshold is the largest mantissa, so it never fires and its membrane holds the
accumulated logits.  The file is built in memory, then written to a temporary path and renamed.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import h5py
import numpy as np

from snnkd import io, safeload
from snnkd.errors import SnnkdError
from snnkd.export.loihi.layers import LoihiNet

LAYER_TYPES = {b"input", b"conv", b"dense", b"dense_rec", b"dense_comp", b"flatten"}


def write_netx(net: LoihiNet, path: str | Path) -> None:
    """Write the netx HDF5 of a sequential ``net`` (raises for branching nets)."""
    if not net.sequential:
        raise SnnkdError("netx expresses only sequential networks; this one has branches (use the Lava graph)")
    buf = BytesIO()  # built in memory: HDF5 failing on a full disk can crash the interpreter
    with h5py.File(buf, "w") as f:
        layers = f.create_group("layer")
        g = layers.create_group("0")  # input: shape only, no neuron (graded spikes enter conv 1)
        g.create_dataset("type", data=b"input")
        g.create_dataset("shape", data=np.array(net.input_shape))
        i = 1
        for layer in net.layers:
            syn = layer.synapses[0]
            if syn.kind == "dense" and syn.flatten:
                g = layers.create_group(str(i))
                g.create_dataset("type", data=b"flatten")
                g.create_dataset("shape", data=np.array([syn.w_q.shape[1]]))
                i += 1
            g = layers.create_group(str(i))
            g.create_dataset("type", data=syn.kind.encode())
            g.create_dataset("shape", data=np.array(layer.shape))
            g.create_dataset("weight", data=syn.w_q.astype(np.int32))
            g.create_dataset("bias", data=layer.bias_q.astype(np.int32))
            if syn.kind == "conv":
                g.create_dataset("stride", data=np.array(syn.stride))
                g.create_dataset("padding", data=np.array(syn.padding))
                g.create_dataset("dilation", data=np.array(syn.dilation))
                g.create_dataset("groups", data=syn.groups)
            n = g.create_group("neuron")
            n.create_dataset("type", data=b"CUBA")
            n.create_dataset("vThMant", data=int(layer.vth))
            n.create_dataset("iDecay", data=4096)
            n.create_dataset("vDecay", data=int(layer.dv))
            i += 1
        f.attrs["snnkd"] = "netx network written by snnkd export"
    io.write_bytes(path, buf.getvalue())  # atomic; a full disk is one error line, no temp file left


def check_netx(path: str | Path) -> int:
    """Validate a netx HDF5 file; return its number of layers.  One clear error for a
    missing, truncated or foreign file."""
    path = safeload.check_hdf5_path(path, "netx", "a netx network")
    with safeload.unreadable_as(path, "netx network"):  # h5py raises OSError/KeyError/ValueError on damaged files
        safeload.check_hdf5(path)  # declared shapes and dtypes bounded before any dataset is read
        with h5py.File(path, "r") as f:
            if "layer" not in f or not isinstance(f["layer"], h5py.Group):
                raise SnnkdError(f"{path} is an HDF5 file but not a netx network (no 'layer' group)")
            keys = sorted(f["layer"].keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if not keys or keys != [str(i) for i in range(len(keys))]:
                raise SnnkdError(f"{path}: netx layers must be named 0..n-1, found {keys[:5]}")
            for k in keys:
                g = f["layer"][k]
                t = g["type"][()] if "type" in g else None
                if t not in LAYER_TYPES or "shape" not in g:
                    raise SnnkdError(f"{path}: layer {k} has no valid type/shape")
                if t in (b"conv", b"dense") and ("weight" not in g or "neuron" not in g):
                    raise SnnkdError(f"{path}: layer {k} ({t.decode()}) lacks weight or neuron")
                if t in (b"conv", b"dense"):
                    g["weight"][()]  # reading the data catches truncation
            return len(keys)
