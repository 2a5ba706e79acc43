"""``snnkd export --to lava``: NIR graph -> Loihi fixed point -> netx HDF5 or Lava process
graph -> run in ``Loihi2SimCfg(select_tag='fixed_pt')`` -> comparison with PyTorch.

Written to ``OUT/``: ``model.nir`` (the graph the deployment is built from),
``network.json`` + ``network.npz`` (the quantised network: scales, threshold mantissas,
decays, integer weights and biases, depths), ``network.net`` (netx HDF5, sequential nets
only).  Report: accuracy of Lava and of the PyTorch SNN on the same test samples,
prediction agreement, logit error, and per-layer spike agreement of Lava with PyTorch
(aligned for the one-step delay of every synapse: a layer of depth ``d`` emits the spikes
of step ``t`` at Lava step ``t + d``) and with the bit-exact emulator
(:func:`snnkd.export.loihi.quant.emulate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from snnkd.errors import SnnkdError
from snnkd.export import nir_check as nc
from snnkd.export.loihi import quant as lq
from snnkd.export.loihi.graph import save_net
from snnkd.export.loihi.netx import check_netx, write_netx
from snnkd.export.loihi.run import run_lava, signals_raise
from snnkd.export.loihi.whole_set import whole_set_report
from snnkd.export.nir_export import to_nir, write_nir
from snnkd.io import atomic_dir
from snnkd.models.base import StagedNet

CALIBRATION_SAMPLES = 64  # fewest training samples the quantisation scales are chosen on


def lava_layer_spikes(rec: np.ndarray, depth: int, N: int, T: int) -> np.ndarray:
    """Lava recording ``[steps, (W, H, C)]`` -> ``[T, N, (C, H, W)]`` aligned to model steps."""
    idx = np.array([[k * T + t + depth - 1 for k in range(N)] for t in range(1, T + 1)])
    s = rec[idx]
    return np.moveaxis(s, (-1, -2, -3), (-3, -2, -1)) if rec.ndim == 4 else s


def export_lava(model: StagedNet, meta: dict, out: str | Path, x: torch.Tensor, y: torch.Tensor,
                calib: torch.Tensor | None = None, calibrate: int = 0, timeout: int = 600,
                nir_path: str | Path | None = None, seed: int = 0, netx_path: str | Path | None = None,
                whole_set: tuple[torch.Tensor, torch.Tensor] | None = None,
                batches: Callable[[range], Iterable[int]] = iter) -> dict:
    """Build, run and compare (see module docstring) on the test inputs ``x`` (un-encoded
    images) and labels ``y``.  ``calib``: un-encoded training images whose encodings set the
    quantisation scales (:data:`CALIBRATION_SAMPLES` or more; not needed with ``netx_path``);
    ``calibrate > 0`` also moves thresholds on them.  ``nir_path``: build from this NIR file;
    ``netx_path``: run this netx HDF5 as written before (its ``network.json`` beside it gives
    depths and scales) instead of building anew.  A ``SIGTERM``/``SIGINT``/``SIGHUP`` stops it
    as :class:`snnkd.export.loihi.run.Terminated` with the Lava child's group killed and no
    temporary file or directory left.  ``whole_set``: every test image and label, run through
    the bit-exact emulator (:mod:`snnkd.export.loihi.whole_set`) and reported as
    ``whole_test_set``, since Lava itself is run on ``x`` only."""
    with signals_raise():
        if netx_path is not None:  # checked before anything is written
            return _run_and_compare(model, Path(out), load_net_checked(netx_path), "netx", x, y, timeout, seed,
                                    {"netx": str(netx_path)}, Path(netx_path), whole_set, batches)
        if calib is None:
            raise ValueError("export_lava needs a calibration batch unless it runs an earlier netx file")
        return _build_and_run(model, meta, Path(out), x, y, calib, calibrate, timeout, nir_path, seed, whole_set, batches)


def _build_and_run(model: StagedNet, meta: dict, out: Path, x: torch.Tensor, y: torch.Tensor, calib_x: torch.Tensor,
                   calibrate: int, timeout: int, nir_path: str | Path | None, seed: int,
                   whole_set: tuple[torch.Tensor, torch.Tensor] | None = None,
                   batches: Callable[[range], Iterable[int]] = iter) -> dict:
    graph = nc.read_nir(nir_path) if nir_path is not None else to_nir(model, meta)
    T = int(graph.metadata.get("T", model.T))
    if T != model.T:
        raise SnnkdError(f"{nir_path} was exported for T={T}, the model runs T={model.T}")
    net = lq.from_nir(graph, T)
    torch.manual_seed(seed)
    calib = model.encoder(calib_x, T)
    q, tried = lq.choose_input_bits(net, calib)
    quant = lq.quantise(net, calib, q)
    shifts = lq.calibrate_thresholds(net, calib) if calibrate > 0 else {}
    mode = "netx" if net.sequential else "graph"
    # built in a temporary directory that replaces OUT only once the run succeeded
    with atomic_dir(out) as tmp:
        if nir_path is None:
            write_nir(graph, tmp / "model.nir")
        save_net(net, tmp)
        if mode == "netx":
            write_netx(net, tmp / "network.net")
            check_netx(tmp / "network.net")
        info = {"nir": str(nir_path if nir_path is not None else out / "model.nir"), "quantisation": quant,
                "calibration": {"samples": calibrate, "vth_shifts": shifts},
                "input_bits_search": {"chosen": q, "input_layer_agreement": {str(k): v for k, v in tried.items()}}}
        result = _run_and_compare(model, tmp, net, mode, x, y, timeout, seed, info, tmp / "network.net", whole_set, batches)
    result["out"] = str(out)
    return result


def load_net_checked(netx_path: str | Path) -> lq.LoihiNet:
    """A netx file written by this exporter, checked, with its ``network.json`` beside it."""
    from snnkd.export.loihi.graph import load_net
    n_layers = check_netx(netx_path)
    net = load_net(Path(netx_path).parent)
    if not net.sequential or n_layers != len(net.layers) + 1 + sum(s.flatten for lay in net.layers for s in lay.synapses):
        raise SnnkdError(f"{netx_path} does not match the network.json beside it")
    return net


def _run_and_compare(model: StagedNet, out: Path, net: lq.LoihiNet, mode: str, x: torch.Tensor, y: torch.Tensor,
                     timeout: int, seed: int, info: dict, h5: Path,
                     whole_set: tuple[torch.Tensor, torch.Tensor] | None = None,
                   batches: Callable[[range], Iterable[int]] = iter) -> dict:
    T = net.T
    if T != model.T:
        raise SnnkdError(f"the Loihi network runs T={T}, the model T={model.T}")
    torch.manual_seed(seed)
    x_seq = model.encoder(x, T)
    ref_y, ref_s = nc.run_reference(model, x_seq)
    emu = lq.emulate(net, x_seq)
    x_q = torch.round(x_seq.double() * 2.0 ** net.input_bits).clamp(-128, 127)
    net_dir = h5.parent if mode == "netx" else out
    # run_lava owns its temporary directory and removes it only once the child's group is dead
    rec = run_lava(net_dir, mode, x_q.permute(1, 0, *range(2, x_q.dim())).numpy(), timeout, None, h5)
    N = len(x)
    layers = {}
    for layer in net.layers[:-1]:
        s = lava_layer_spikes(rec[f"spikes:{layer.name}"], layer.depth, N, T)
        r = ref_s[nc.spike_key(layer.name)].numpy()
        layers[layer.name] = {"depth": layer.depth, "agreement_torch": float((s == r).mean()),
                              "agreement_emulator": float((s == emu[layer.name].numpy()).mean()),
                              "rate_lava": float(s.mean()), "rate_torch": float(r.mean())}
    out_layer = net.layers[-1]
    v_idx = [k * T + T + out_layer.depth - 1 for k in range(N)]
    v = torch.as_tensor(rec["v:output"][v_idx]).double()
    logits = lq.logits_from_output(net, v)
    ref_logits = ref_y.mean(0).double()
    acc_lava = float((logits.argmax(1) == y).double().mean())
    acc_torch = float((ref_logits.argmax(1) == y).double().mean())
    total = sum(np.prod(ref_s[nc.spike_key(lay.name)].shape) for lay in net.layers[:-1])
    return {
        "format": "lava", "out": str(out), "mode": mode, "T": T, "test_samples": N,
        "run_config": "Loihi2SimCfg(select_tag='fixed_pt')", "lava_seconds": float(rec["seconds"]),
        "accuracy_lava": acc_lava, "accuracy_torch": acc_torch, "accuracy_gap_pp": 100 * (acc_lava - acc_torch),
        "accuracy_emulator": float((lq.logits_from_output(net, emu["v:output"][-1]).argmax(1) == y).double().mean()),
        "prediction_agreement": float((logits.argmax(1) == ref_logits.argmax(1)).double().mean()),
        "logits_max_abs_error": float((logits - ref_logits).abs().max()),
        "output_equals_emulator": bool((v == emu["v:output"][-1]).all()),
        "spike_agreement_torch": sum(info["agreement_torch"] * np.prod(ref_s[nc.spike_key(n)].shape)
                                     for n, info in layers.items()) / max(total, 1),
        "layers": layers, **info,
        **({"whole_test_set": whole_set_report(model, net, *whole_set, seed=seed, batches=batches)}
           if whole_set is not None else {}),
    }
