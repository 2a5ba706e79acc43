"""Loihi export: quantisation, netx HDF5, Lava process graph, runs in Lava fixed_pt."""

from __future__ import annotations

import importlib.util
import json

import h5py
import numpy as np
import pytest
import torch
from export_models import scratch, trained

from snnkd.cli.inputs import model_inputs
from snnkd.cli.main import main
from snnkd.errors import SnnkdError
from snnkd.export.loihi import quant as lq
from snnkd.export.loihi.netx import check_netx, write_netx
from snnkd.export.loihi.pipeline import export_lava
from snnkd.export.nir_export import to_nir, write_nir
from snnkd.neurons import NeuronConfig
from snnkd.runtime import build, load_model

pytestmark = pytest.mark.timeout(400)
needs_lava = pytest.mark.skipif(importlib.util.find_spec("lava") is None, reason="Lava not installed")


def _quantised(arch: str):
    model, meta = load_model(trained(arch))
    net = lq.from_nir(to_nir(model, meta), model.T)
    calib = model.encoder(model_inputs(meta, "data", "calibration", 48)[0], model.T)
    return model, meta, net, calib, lq.quantise(net, calib)


@pytest.mark.parametrize("arch", ["vgg_tiny", "resnet_tiny"])
def test_quantisation_respects_loihi_formats(arch: str) -> None:
    model, meta, net, calib, summary = _quantised(arch)
    assert net.sequential == (arch == "vgg_tiny")
    for layer in net.layers:
        for s in layer.synapses:
            assert s.w_q.min() >= -256 and s.w_q.max() <= 254 and np.all(s.w_q % 2 == 0)
        assert np.abs(layer.bias_q).max() <= 4096 and 0 < layer.vth < 2**17 and 0 <= layer.dv <= 4096
        assert layer.bias_exp.min() >= 6 and layer.bias_exp.max() <= (6 if net.sequential else 7)  # netx: 6 only
    # the overflow guards hold on the calibration data: 16-bit synaptic input, 24-bit output
    emu = lq.emulate(net, calib)
    for layer in net.layers:
        assert emu["current:" + layer.name].abs().max() < 2**15
    assert emu["v:output"].abs().max() < 2**23
    if arch == "resnet_tiny":  # skip paths are one synapse short: one relay each
        joins = [lay for lay in net.layers if len(lay.synapses) == 2]
        assert len(joins) == 2 and all(sorted(s.relays for s in lay.synapses) == [0, 1] for lay in joins)


def test_fixed_point_tracks_the_float_model() -> None:
    model, meta, net, calib, _ = _quantised("vgg_tiny")
    x, y = model_inputs(meta, "data", "test", 120)
    xs = model.encoder(x, model.T)
    flt, emu = lq.float_forward(net, xs), lq.emulate(net, xs)
    for layer in net.layers[:-1]:
        assert (flt[layer.name] == emu[layer.name]).double().mean() > 0.95
    ref = model(x).argmax(1)
    pred = lq.logits_from_output(net, emu["v:output"][-1]).argmax(1)
    assert (pred == ref).double().mean() >= 0.95
    # calibration moves thresholds only where it raises agreement on the calibration set
    calib = calib[:, :16]
    before = {lay.name: float((lq.emulate(net, calib)[lay.name] == lq.float_forward(net, calib)[lay.name])
                              .double().mean()) for lay in net.layers[:-1]}
    lq.calibrate_thresholds(net, calib)
    after_emu, after_flt = lq.emulate(net, calib), lq.float_forward(net, calib)
    first = net.layers[0].name
    assert float((after_emu[first] == after_flt[first]).double().mean()) >= before[first]


def test_soft_reset_is_refused() -> None:
    torch.manual_seed(0)
    m = build("vgg_tiny", NeuronConfig(reset="soft"), 10, 1, 8, T=2)
    with pytest.raises(SnnkdError, match="soft-reset"):
        lq.from_nir(to_nir(m), 2)


def test_netx_file_and_bad_files(tmp_path) -> None:
    _, _, net, _, _ = _quantised("vgg_tiny")
    path = tmp_path / "network.net"
    write_netx(net, path)
    assert check_netx(path) == 5  # input, conv, conv, flatten, dense
    with h5py.File(path) as f:
        assert f["layer/1/type"][()] == b"conv" and f["layer/1/weight"].dtype.kind == "i"
        assert f["layer/1/neuron/vThMant"][()] == net.layers[0].vth and f["layer/4/neuron/iDecay"][()] == 4096
    data = path.read_bytes()
    (tmp_path / "trunc.net").write_bytes(data[: len(data) // 3])
    with h5py.File(tmp_path / "foreign.net", "w") as f:
        f["data"] = np.zeros(3)
    (tmp_path / "text.net").write_text("hello\n")
    for name in ("trunc.net", "foreign.net", "text.net", "missing.net"):
        with pytest.raises(SnnkdError):
            check_netx(tmp_path / name)
    _, _, res, _, _ = _quantised("resnet_tiny")
    with pytest.raises(SnnkdError, match="sequential"):
        write_netx(res, tmp_path / "res.net")


def test_cli_bad_inputs_exit_2(tmp_path, capsys) -> None:
    (tmp_path / "bad.nir").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    (tmp_path / "network.net").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    for extra in (["--nir", str(tmp_path / "bad.nir")], ["--netx", str(tmp_path / "network.net")]):
        capsys.readouterr()
        rc = main(["export", "--model", str(trained("vgg_tiny")), "--to", "lava", "--out", str(tmp_path / "o"),
                   "--report", str(tmp_path / "r.json"), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("snnkd: error:"), err
        assert not (tmp_path / "r.json").exists()


@needs_lava
def test_lava_netx_run_is_bit_exact_and_accurate() -> None:
    model, meta = load_model(trained("vgg_tiny"))
    out = scratch()
    x, y = model_inputs(meta, "data", "test", 16)
    calib = model_inputs(meta, "data", "calibration", 64)[0]
    rep = export_lava(model, meta, out, x, y, calib, timeout=300)
    assert rep["mode"] == "netx" and (out / "network.net").exists()
    assert rep["output_equals_emulator"]
    assert all(v["agreement_emulator"] == 1.0 for v in rep["layers"].values())
    assert rep["prediction_agreement"] >= 0.9 and abs(rep["accuracy_gap_pp"]) <= 100 / 16 * 2
    assert rep["spike_agreement_torch"] > 0.95


@needs_lava
def test_lava_graph_run_of_a_residual_net(tmp_path) -> None:
    model, meta = load_model(trained("resnet_tiny"))
    nir_path = tmp_path / "m.nir"
    write_nir(to_nir(model, meta), nir_path)
    rc = main(["export", "--model", str(trained("resnet_tiny")), "--to", "lava", "--out", str(tmp_path / "lava"),
               "--report", str(tmp_path / "lava.json"), "--limit-test", "6", "--nir", str(nir_path),
               "--timeout", "300"])
    assert rc == 0
    rep = json.loads((tmp_path / "lava.json").read_text())
    assert rep["mode"] == "graph" and rep["output_equals_emulator"]
    assert all(v["agreement_emulator"] == 1.0 for v in rep["layers"].values())
    assert rep["spike_agreement_torch"] > 0.7  # quantisation error grows with depth
    assert (tmp_path / "lava" / "network.json").exists() and not (tmp_path / "lava" / "network.net").exists()


def test_input_bits_trade_input_precision_for_weight_levels(monkeypatch) -> None:
    """The input layer's 16-bit synaptic input bounds ``|w_q| |x_q|``: with that bound made
    tight (``A_IN_MAX`` 2^11), the most input bits leave the stem few weight levels, and
    ``choose_input_bits`` takes fewer input bits where the stem's spikes agree better with
    the float model; each score is the stem's agreement after quantising with that ``q``."""
    model, meta, net, calib, _ = _quantised("resnet_tiny")
    monkeypatch.setattr(lq, "A_IN_MAX", 2**11 - 1)
    q_max = lq.max_input_bits(calib)
    q, scores = lq.choose_input_bits(net, calib)
    assert sorted(scores) == [q_max - 2, q_max - 1, q_max]
    assert q < q_max and scores[q] > scores[q_max]
    stem = net.layers[0].name
    levels = {}
    for k in (q_max, q):
        summary = lq.quantise(net, calib, k)
        levels[k] = max(abs(summary[stem]["weight_min"]), summary[stem]["weight_max"])
        agree = float((lq.emulate(net, calib)[stem] == lq.float_forward(net, calib)[stem]).double().mean())
        assert agree == pytest.approx(scores[k])
    assert levels[q] > levels[q_max]


def _mean_input_error(net: lq.LoihiNet, layer: lq.Layer, ref: dict) -> np.ndarray:
    """Per channel, the mean over ``ref``'s samples of (the quantised layer's input, in real
    units) minus (the float layer's input), both fed the float model's spikes: written out
    with ``F.conv2d``/``F.linear`` here, not with the quantiser's helpers."""
    import torch.nn.functional as F
    def current(s: lq.Synapse, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if s.kind == "conv":
            return F.conv2d(x, k, None, s.stride, s.padding, s.dilation, s.groups)
        return F.linear(x.flatten(1) if s.flatten else x, k)

    diff = 0.0
    for s in layer.synapses:
        x = ref[s.src].flatten(0, 1)
        w_eff = torch.as_tensor(s.w_q, dtype=torch.float64) / layer.scale
        diff = diff + current(s, x, w_eff) - current(s, x, torch.as_tensor(s.weight, dtype=torch.float64))
    b = lq.bias_units(layer) / (64.0 * layer.scale) - layer.bias
    dims = (0, 2, 3) if diff.dim() == 4 else (0,)
    return diff.mean(dim=dims).numpy() + b


def test_bias_correction_cancels_each_channels_mean_rounding_error() -> None:
    """Rounding a layer's weights to 8 bits shifts each channel's mean input; with bias
    correction (an option) the bias absorbs that shift on the calibration samples, up to
    the bias's own rounding; without it the shift stays, several bias steps large."""
    model, meta, net, calib, _ = _quantised("resnet_tiny")
    ref = lq.float_forward(net, calib)
    hidden = [lay for lay in net.layers if all(s.src != "input" for s in lay.synapses)]
    plain = {}
    lq.quantise(net, calib, net.input_bits, ref, bias_correction=False)
    for lay in hidden:
        plain[lay.name] = (np.abs(_mean_input_error(net, lay, ref)), 2.0 ** (lay.bias_exp - 6) / lay.scale)
    lq.quantise(net, calib, net.input_bits, ref, bias_correction=True)
    for lay in hidden:
        step = 2.0 ** (lay.bias_exp - 6) / lay.scale  # one bias step in real units
        err = np.abs(_mean_input_error(net, lay, ref))
        assert np.all(err <= 0.5 * step + 1e-9), lay.name
    # it had something to correct: without it some channel is off by more than 2 bias steps
    assert max(float((e / st).max()) for e, st in plain.values()) > 2.0


@needs_lava
def test_a_bias_that_bounds_the_scale_takes_exponent_7_and_lava_runs_it_bit_exact(tmp_path) -> None:
    """A channel whose bias alone bounds the layer's scale gets ``bias_exp = 7`` (the others
    keep 6), which doubles the scale and so the weights' resolution; Lava's ``LIFReset``
    with that per-neuron exponent equals the emulator bit for bit."""
    from snnkd.export.loihi.graph import save_net
    from snnkd.export.loihi.pipeline import _run_and_compare

    model, meta, net, calib, _ = _quantised("resnet_tiny")
    stem = net.layers[0]
    stem.bias = stem.bias.copy()
    stem.bias[0] = 40 * max(float(np.abs(stem.bias).max()), 0.1)
    lq.quantise(net, calib)
    assert not net.sequential
    assert stem.bias_exp[0] == 7 and np.all(stem.bias_exp[1:] == 6)
    assert stem.scale == pytest.approx(2 * 4095 / stem.bias[0])
    assert abs(int(stem.bias_q[0]) * 2 - stem.bias[0] * stem.scale) <= 1  # b_q << 7 is b S in 2^-6 units
    save_net(net, tmp_path)
    x, y = model_inputs(meta, "data", "test", 6)
    rep = _run_and_compare(model, tmp_path, net, "graph", x, y, 300, 0, {}, tmp_path / "network.net")
    assert rep["output_equals_emulator"]
    assert all(v["agreement_emulator"] == 1.0 for v in rep["layers"].values())


@needs_lava
def test_a_lava_run_past_its_timeout_is_stopped(tmp_path) -> None:
    from snnkd.export.loihi.run import run_lava
    _, _, net, _, _ = _quantised("vgg_tiny")
    from snnkd.export.loihi.graph import save_net
    save_net(net, tmp_path)
    x_q = np.zeros((2, net.T, *net.input_shape), np.int32)
    with pytest.raises(SnnkdError, match="did not finish within 1 s"):
        run_lava(tmp_path, "graph", x_q, 1, tmp_path / "work")
