"""SynOps, MACs and firing rates against hand computations."""

import itertools

import pytest
import torch
from torch import nn

from snnkd.energy import price
from snnkd.models.base import ClassifierHead, StagedNet
from snnkd.neurons import NeuronConfig, SpikingNeuron
from snnkd.ops import conv_synops, count_ops


def test_conv_synops_all_ones_counts_border_fanout():
    # 3x3, pad 1 on 4x4: corners reach 4 outputs, edges 6, interior 9 -> 4*4 + 8*6 + 4*9 = 100
    conv = nn.Conv2d(2, 5, 3, 1, 1)
    assert conv_synops(torch.ones(1, 2, 4, 4), conv) == 100 * 2 * 5
    # stride 2: the four outputs see 4, 6, 6 and 9 valid inputs -> 25 per channel pair
    conv2 = nn.Conv2d(2, 5, 3, 2, 1)
    assert conv_synops(torch.ones(1, 2, 4, 4), conv2) == 25 * 2 * 5


def hand_synops(s: torch.Tensor, cout: int, k: int, stride: int, pad: int) -> int:
    """Loop over every input position and count the output positions its spikes reach
    (``s`` holds spikes or spike counts)."""
    n, c, h, w = s.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    total = 0
    for b, ch, i, j in itertools.product(range(n), range(c), range(h), range(w)):
        if s[b, ch, i, j] == 0:
            continue
        for oi, oj in itertools.product(range(oh), range(ow)):
            if 0 <= i - (oi * stride - pad) < k and 0 <= j - (oj * stride - pad) < k:
                total += cout * int(s[b, ch, i, j])
    return total


def record_spikes(net: StagedNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every spiking layer's output for one forward pass on ``x``."""
    spikes: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: spikes.__setitem__(n, o))
             for n, m in net.named_modules() if isinstance(m, SpikingNeuron)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return spikes


class TinyConvSNN(StagedNet):
    def __init__(self, T: int) -> None:
        super().__init__()
        cfg = NeuronConfig(kind="if", threshold=0.5)
        self.stem = nn.Sequential(nn.Conv2d(1, 3, 3, 1, 1), SpikingNeuron(cfg))
        self.stages = nn.ModuleDict({"s1": nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), SpikingNeuron(cfg))})
        self.feature_info = [{"name": "s1", "channels": 4, "reduction": 2}]
        self.head = ClassifierHead(4 * 3 * 3, 5, "flatten")
        self.set_T(T)


def test_count_ops_matches_hand_computation():
    torch.manual_seed(0)
    T, B = 3, 2
    net = TinyConvSNN(T)
    x = torch.randn(B, 1, 6, 6)
    spikes = record_spikes(net, x)
    s_stem, s_stage = spikes["stem.1"], spikes["stages.s1.1"]
    assert 0 < s_stem.mean() < 1 and 0 < s_stage.mean() < 1, "test needs partial firing"
    report = count_ops(net, [(x, None)])
    # first conv: real-valued input -> MACs = C_out * C_in * k*k * H_out * W_out per time step
    assert report.layers["stem.0"].macs == pytest.approx(T * 3 * 1 * 9 * 6 * 6)
    assert report.layers["stem.0"].synops == 0
    assert report.layers["stages.s1.0"].synops == pytest.approx(hand_synops(s_stem, 4, 3, 2, 1) / B)
    assert report.layers["head.fc"].synops == pytest.approx(float(s_stage.sum()) * 5 / B)
    assert report.synops == pytest.approx(report.layers["stages.s1.0"].synops + report.layers["head.fc"].synops)
    assert report.firing_rates["stem.1"] == pytest.approx(float(s_stem.mean()))
    assert report.neuron_updates == pytest.approx(T * (3 * 36 + 4 * 9))
    e = price(report, {"mac_pj": 4.6, "ac_pj": 0.9})
    assert e["total_pj"] == pytest.approx(report.macs * 4.6 + report.synops * 0.9)
    # events: spikes as SynOps; the real-valued input as graded spikes (non-zero values x fan-out)
    nz = (x != 0).float()
    assert report.layers["stem.0"].events == pytest.approx(T * hand_synops(nz, 3, 3, 1, 1) / B)
    assert report.layers["stages.s1.0"].events == pytest.approx(report.layers["stages.s1.0"].synops)
    assert report.layers["stem.0"].dense_macs == pytest.approx(3 * 1 * 9 * 6 * 6)
    assert report.neurons == {"stem.1": T * 3 * 36, "stages.s1.1": T * 4 * 9}
    assert report.output_neurons == 5 * T


def test_ann_counts_only_macs():
    from snnkd.models import create_model
    ann = create_model("vgg_tiny", None, 10, 1, 8)
    report = count_ops(ann, [(torch.randn(2, 1, 8, 8), None)])
    expected = 16 * 1 * 9 * 8 * 8 + 32 * 16 * 9 * 4 * 4 + 32 * 4 * 4 * 10
    assert report.synops == 0
    assert report.macs == pytest.approx(expected)


class TinyPooledSNN(StagedNet):
    """conv -> IF -> avgpool 2 -> conv -> IF -> GAP -> fc: spikes reach both later layers
    only through average pooling."""

    def __init__(self, T: int) -> None:
        super().__init__()
        cfg = NeuronConfig(kind="if", threshold=0.5)
        self.stem = nn.Sequential(nn.Conv2d(1, 3, 3, 1, 1), SpikingNeuron(cfg))
        self.stages = nn.ModuleDict({"s1": nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(3, 4, 3, 1, 1),
                                                         SpikingNeuron(cfg))})
        self.feature_info = [{"name": "s1", "channels": 4, "reduction": 2}]
        self.head = ClassifierHead(4, 5, "gap")
        self.set_T(T)


def test_pooled_spikes_count_as_synops():
    torch.manual_seed(1)
    T, B = 2, 2
    net = TinyPooledSNN(T)
    x = torch.randn(B, 1, 6, 6)
    spikes = record_spikes(net, x)
    s_stem, s_stage = spikes["stem.1"], spikes["stages.s1.2"]
    assert 0 < s_stem.mean() < 1 and 0 < s_stage.mean() < 1, "test needs partial firing"
    counts = s_stem.reshape(-1, 3, 3, 2, 3, 2).sum((3, 5))  # 2x2 sum pool, by hand
    report = count_ops(net, [(x, None)])
    conv = report.layers["stages.s1.1"]
    assert conv.spiking_input and conv.macs == 0
    assert conv.synops == pytest.approx(hand_synops(counts, 4, 3, 1, 1) / B)
    fc = report.layers["head.fc"]
    assert fc.spiking_input and fc.macs == 0 and fc.input == "pooled spikes"
    assert fc.events == pytest.approx(fc.synops)
    assert fc.synops == pytest.approx(float(s_stage.sum()) * 5 / B)
    assert fc.input_rate == pytest.approx(float(s_stage.mean()))
