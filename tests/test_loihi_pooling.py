"""Average pooling between spiking layers on Loihi (issue 15): Loihi has no pooling stage, so
``snnkd.export.loihi.quant`` folds a pooling into the convolution or linear layer after it
(pooling is linear on spike maps).  The folds are checked against torch in float64, the
folded graph against the PyTorch SNN, and a trained ``mnist_2conv_s`` (KDSNN's 2-conv net,
pooling before its second convolution) runs in Lava bit-exact with the integer emulator."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from export_models import scratch, trained

from snnkd.cli.main import main
from snnkd.errors import SnnkdError
from snnkd.export.loihi import folding as fo
from snnkd.export.loihi import quant as lq
from snnkd.export.nir_export import to_nir
from snnkd.runtime import load_model

needs_lava = pytest.mark.skipif(importlib.util.find_spec("lava") is None, reason="Lava not installed")


@pytest.mark.parametrize("k,K,stride,pad,hw", [(2, 3, 1, 1, 8), (2, 3, 2, 0, 12), (3, 1, 1, 0, 9), (2, 5, 1, 2, 16)])
def test_conv_after_pooling_is_one_conv(k, K, stride, pad, hw):
    g = torch.Generator().manual_seed(k * 100 + K)
    x = torch.rand(3, 4, hw, hw, generator=g, dtype=torch.float64).round()  # spike maps
    w = torch.randn(5, 4, K, K, generator=g, dtype=torch.float64)
    ref = F.conv2d(F.avg_pool2d(x, k), w, stride=stride, padding=pad)
    pool = fo.Pool("p", (k, k), (k, k))
    w2, s2, p2 = fo.fold_pool_into_conv(w.numpy(), (stride, stride), (pad, pad), pool, (hw, hw))
    got = F.conv2d(x, torch.from_numpy(w2), stride=s2, padding=p2)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("hw,pools", [(7, [2]), (8, [2, 2]), (6, [6]), (9, [3])])
def test_linear_after_pooling_is_one_linear(hw, pools):
    g = torch.Generator().manual_seed(hw)
    x = torch.rand(3, 4, hw, hw, generator=g, dtype=torch.float64).round()
    pooled = x
    for k in pools:
        pooled = F.avg_pool2d(pooled, k)  # floor: 7x7 -> 3x3 drops the last row and column
    w = torch.randn(6, pooled[0].numel(), generator=g, dtype=torch.float64)
    ref = F.linear(pooled.flatten(1), w)
    nearest_first = [fo.Pool(f"p{i}", (k, k), (k, k)) for i, k in reversed(list(enumerate(pools)))]
    w2 = fo.fold_pool_into_dense(w.numpy(), nearest_first, (4, hw, hw), "fc")
    torch.testing.assert_close(F.linear(x.flatten(1), torch.from_numpy(w2)), ref, rtol=0, atol=1e-12)


def test_unfoldable_poolings_are_refused():
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(SnnkdError, match="stride"):
        fo.fold_pool_into_conv(w, (1, 1), (1, 1), fo.Pool("p", (3, 3), (2, 2)), (8, 8))
    with pytest.raises(SnnkdError, match="drops rows"):
        fo.fold_pool_into_conv(w, (1, 1), (1, 1), fo.Pool("p", (2, 2), (2, 2)), (7, 7))


def test_folded_graph_follows_the_pytorch_snn():
    model, meta = load_model(trained("mnist_2conv_s"))
    net = lq.from_nir(to_nir(model, meta), model.T)
    convs = [s for lay in net.layers for s in lay.synapses if s.kind == "conv"]
    assert [s.stride for s in convs] == [(1, 1), (2, 2)] and convs[1].weight.shape[-1] == 6  # 3x3 after 2x2 pool
    x = torch.rand(16, *net.input_shape, generator=torch.Generator().manual_seed(0))
    flt = lq.float_forward(net, model.encoder(x, model.T))
    with torch.no_grad():
        ref = model(x)
    got = flt["v:output"][-1] / model.T  # the output membrane sums W s_t + b over the T steps
    assert (got.argmax(1) == ref.argmax(1)).all()
    close = torch.isclose(got, ref.double(), atol=1e-4).all(1).double().mean()
    assert close >= 0.9, f"only {close:.0%} of samples give the same logits"  # float32 vs float64 edges


@needs_lava
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_conv_net_runs_in_lava_bit_exact():
    out = scratch() / "lava"
    rc = main(["export", "--model", str(trained("mnist_2conv_s")), "--to", "lava", "--out", str(out),
               "--limit-test", "40"])
    assert rc == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["mode"] == "netx" and report["output_equals_emulator"]
    assert all(lay["agreement_emulator"] == 1.0 for lay in report["layers"].values())
    assert report["prediction_agreement"] >= 0.9
    # the emulator on every test image, beside PyTorch on the same images (what evaluate reports)
    whole = report["whole_test_set"]
    ev = scratch() / "eval.json"
    assert main(["evaluate", "--model", str(trained("mnist_2conv_s")), "--out", str(ev)]) == 0
    evaluated = json.loads(ev.read_text())
    assert whole["samples"] == evaluated["test_samples"] > report["test_samples"]
    assert 100 * whole["accuracy_torch"] == pytest.approx(evaluated["accuracy"], abs=1e-6)  # eval.json: percent
    assert abs(whole["gap_pp"]) <= 3 and whole["prediction_agreement"] >= 0.9
    assert set(whole["spike_agreement_per_layer"]) == set(report["layers"])
