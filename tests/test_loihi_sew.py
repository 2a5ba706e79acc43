"""SEW-ResNet blocks on Loihi (issue 15): a spike-element-wise ADD join (``act2(...) +
shortcut(x)``, not re-spiked) feeds the next convolution a sum of spike maps; on Loihi that
is one synapse per summed source (``W (s_1 + s_2) = W s_1 + W s_2``).  A small SEW net of
the library's own ``SEWBlock`` (``sew_resnet18`` itself has a max-pooling stem, refused)
follows the PyTorch SNN in the float graph, and in Lava equals the integer emulator."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from export_models import scratch
from torch import nn

from snnkd.export.loihi import quant as lq
from snnkd.export.loihi.pipeline import export_lava
from snnkd.export.nir_export import to_nir
from snnkd.models.paper import SEWBlock, StagedResNet
from snnkd.models.registry import act_factory
from snnkd.neurons import NeuronConfig


def sew_net() -> StagedResNet:
    torch.manual_seed(0)
    act = act_factory(NeuronConfig(threshold=0.5))
    stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), act())
    net = StagedResNet(SEWBlock, [1, 1], [8, 16], stem, 8, 1, act, 10, binary_stages=False)
    net.arch, net.in_chans, net.img_size = "sew_test", 1, 8
    for m in net.modules():  # BatchNorm statistics of a trained net, so that neurons fire
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.2, 0.5)
            m.weight.data.uniform_(0.8, 1.5)
    return net.set_T(2).eval()


def test_sew_join_becomes_one_synapse_per_summed_source():
    model = sew_net()
    net = lq.from_nir(to_nir(model), 2)
    joins = [lay for lay in net.layers if len({s.src for s in lay.synapses}) > 1]
    assert joins, "the ADD join should feed a layer from two sources"
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2
    flt = lq.float_forward(net, model.encoder(x, 2))
    with torch.no_grad():
        ref = model(x)
    got = flt["v:output"][-1] / 2
    assert sum(float(flt[lay.name].mean()) for lay in net.layers[:-1]) > 0  # spikes flow
    assert (got.argmax(1) == ref.argmax(1)).all()
    assert torch.isclose(got, ref.double(), atol=1e-4).all(1).double().mean() >= 0.9


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(importlib.util.find_spec("lava") is None, reason="Lava not installed")
def test_sew_net_runs_in_lava_bit_exact_with_the_emulator():
    model = sew_net()
    g = torch.Generator().manual_seed(2)
    x, calib = torch.rand(8, 1, 8, 8, generator=g) * 2, torch.rand(64, 1, 8, 8, generator=g) * 2
    y = torch.randint(0, 10, (8,), generator=g)
    r = export_lava(model, {"dataset": "digits", "arch": "sew_test"}, scratch() / "lava", x, y, calib)
    assert r["mode"] == "graph" and r["output_equals_emulator"]
    assert all(lay["agreement_emulator"] == 1.0 for lay in r["layers"].values())
