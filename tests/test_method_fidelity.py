"""Fidelity of the methods to their papers' code (issue 11, section 1): CKDSNN's SAMD
normalisation, the overhaul-distillation margin and stage weights of feature KD, the
block-wise mapping's ReLU, hybrid-term scale and warm-up, and heterogeneous
teacher/student pairs for every method that taps features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from snnkd.errors import SnnkdError
from snnkd.methods import build_method, freeze
from snnkd.methods.feature import bn_margin, partial_l2
from snnkd.methods.saliency import minmax_batch
from snnkd.models import create_model
from snnkd.neurons import NeuronConfig

K = 10
LIF = NeuronConfig(kind="lif", decay=0.5)


def pair(student: str, teacher: str, size: int, T: int = 2):
    torch.manual_seed(0)
    t = freeze(create_model(teacher, None, K, 1, size))
    s = create_model(student, LIF, K, 1, size, T=T)
    torch.manual_seed(1)
    x = torch.rand(4, 1, size, size) * 3.0
    return s, t, x, torch.tensor([0, 3, 5, 9])


# ---------------------------------------------------------------- CKDSNN SAMD
def test_samd_normalisation_shifts_before_dividing():
    """``(A - min) / (max(A - min) + 1e-3)``: with min > 0 the map spans [0, ~1], which the
    earlier ``/ (max + 1e-3)`` did not (it gave at most (max - min) / max)."""
    a = torch.tensor([[[2.0, 3.0], [4.0, 6.0]]])
    ref = (a.numpy() - 2.0) / (4.0 + 1e-3)
    np.testing.assert_allclose(minmax_batch(a).numpy(), ref, rtol=1e-6)
    assert minmax_batch(a).max().item() == pytest.approx(4.0 / 4.001)
    assert minmax_batch(a).max().item() > (6.0 - 2.0) / (6.0 + 1e-3) + 0.2  # the old rule's maximum


# ---------------------------------------------------------------- feature KD
def test_bn_margin_is_the_mean_of_the_negative_part():
    """``m_c = E[x | x < 0]``, ``x ~ N(beta, gamma^2)``, against scipy's truncated normal."""
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 0.5, -2.0, 0.1]))
        bn.bias.copy_(torch.tensor([0.0, 0.3, -1.0, 1.0]))  # channel 3: P(x < 0) ~ 1e-23 -> -3 sigma
    got = bn_margin(bn).numpy()
    for c, (g, b) in enumerate(zip([1.0, 0.5, 2.0], [0.0, 0.3, -1.0])):
        ref = stats.truncnorm(-np.inf, (0 - b) / g, loc=b, scale=g).mean()
        assert got[c] == pytest.approx(ref, rel=1e-5)
    assert got[3] == pytest.approx(-0.3)


def test_feature_margin_clamps_the_teacher_target():
    s, t, x, y = pair("resnet_tiny", "resnet_tiny_wide", 8)
    m = build_method("feature", s, t, {"stages": ["layer2"], "margin": True, "alpha": 1.0})
    m.eval(), s.eval()
    out = m(s, t, x, y)
    so, to = s.forward_stages(x), t.forward_stages(x, preacts=True)
    margin = bn_margin(t.stages["layer2"][-1].conv2[1])[None, :, None, None]  # main branch, not the shortcut
    target = torch.maximum(to.preacts["layer2"], margin)
    expect = partial_l2(m.connectors["layer2"](so.rates["layer2"]), target)
    assert out.terms["feat"].item() == pytest.approx(expect.item(), rel=1e-5)
    plain = build_method("feature", s, t, {"stages": ["layer2"], "alpha": 1.0})
    plain.load_state_dict(m.state_dict(), strict=False)
    plain.eval()
    assert plain(s, t, x, y).terms["feat"].item() != pytest.approx(expect.item(), rel=1e-3)


def test_feature_stage_weights():
    s, t, x, y = pair("resnet_tiny", "resnet_tiny_wide", 8)
    m = build_method("feature", s, t, {"stages": ["layer1", "layer2"], "weights": "overhaul", "alpha": 1.0})
    assert m.weights == [0.5, 1.0]
    m.eval(), s.eval()
    so, to = s.forward_stages(x), t.forward_stages(x, preacts=True)
    parts = [partial_l2(m.connectors[st](so.rates[st]), to.preacts[st]).item() for st in ("layer1", "layer2")]
    assert m(s, t, x, y).terms["feat"].item() == pytest.approx(0.5 * parts[0] + parts[1], rel=1e-5)
    with pytest.raises(SnnkdError, match="weights"):
        build_method("feature", s, t, {"stages": ["layer1", "layer2"], "weights": [1.0]})


# ---------------------------------------------------------------- block-wise
def test_blockwise_mapping_relu_option():
    s, t, x, y = pair("resnet_tiny", "resnet_tiny_wide", 8)
    on = build_method("blockwise", s, t, {"stages": ["layer1"]})
    off = build_method("blockwise", s, t, {"stages": ["layer1"], "relu": False})
    rate = s.forward_stages(x).rates["layer1"]
    assert (on.mapped(t, "layer1", rate) >= 0).all()
    assert (off.mapped(t, "layer1", rate) < 0).any()  # a signed BN output: what the teacher never saw


def test_blockwise_hybrid_scale_and_warmup():
    """Default ``h = 1/K``; with ``warmup_steps = 3`` the hybrid terms grow as 1/4, 2/4, 3/4, 1
    of ``h`` over the first training steps, and the step count is saved with the method."""
    s, t, x, y = pair("resnet_tiny", "resnet_tiny_wide", 8)
    stages = ["layer1", "layer2"]
    ref = build_method("blockwise", s, t, {"stages": stages, "hybrid_scale": 1.0})
    m = build_method("blockwise", s, t, {"stages": stages})
    assert m.hybrid_scale == 0.5
    m.load_state_dict(ref.state_dict())
    m.eval(), ref.eval(), s.eval()
    full, half = ref(s, t, x, y).terms, m(s, t, x, y).terms
    for st in stages:
        assert half[f"ce_M_{st}"].item() == pytest.approx(0.5 * full[f"ce_M_{st}"].item(), rel=1e-6)
        assert half[f"kd_M_{st}"].item() == pytest.approx(0.5 * full[f"kd_M_{st}"].item(), rel=1e-6)
    assert half["ce"].item() == pytest.approx(full["ce"].item())
    w = build_method("blockwise", s, t, {"stages": stages, "warmup_steps": 3})
    w.load_state_dict(ref.state_dict())
    seen = []
    for _ in range(5):
        w.train()
        ce_m = w(s, t, x, y).terms["ce_M_layer1"]
        seen.append(ce_m.item() / full["ce_M_layer1"].item() / 0.5)
    assert seen[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0], rel=2e-2)  # s in train mode: small BN drift
    assert int(w.state_dict()["steps"]) == 5


# ---------------------------------------------------------------- heterogeneous pairs
HETERO = [
    ("feature", {"stages": ["block2:layer2"]}),
    ("relation", {"stage": "block2:layer2"}),
    ("saliency", {}),
    ("blurred", {}),
    ("blockwise", {"stages": ["block1:layer1"]}),
]


@pytest.mark.parametrize("name,params", HETERO, ids=[h[0] for h in HETERO])
@pytest.mark.parametrize("student,teacher,size", [("vgg_tiny", "resnet_tiny_wide", 8),
                                                  ("mnist_2conv_s", "resnet_fm_wide", 28)])
def test_heterogeneous_teacher_and_student(name, params, student, teacher, size):
    """A VGG-like or 2-conv student from a ResNet teacher (other stage names; at 28x28 also
    other map sizes: 14x14 student maps against 7x7 teacher maps): every feature-level
    method builds, gives a finite loss, and its gradient reaches student and adapters."""
    s, t, x, y = pair(student, teacher, size)
    m = build_method(name, s, t, params)
    out = m(s, t, x, y)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in s.parameters())
    for p in m.parameters():
        assert p.grad is not None, name
    assert all(p.grad is None for p in t.parameters())


def test_stage_pair_errors_name_the_stage():
    s, t, x, y = pair("vgg_tiny", "resnet_tiny_wide", 8)
    with pytest.raises(SnnkdError, match="'layer9'"):
        build_method("feature", s, t, {"stages": ["block2:layer9"]})
    with pytest.raises(SnnkdError, match="student_stage:teacher_stage"):
        build_method("blurred", s, t, {"stage": "a:b:c"})
    with pytest.raises(SnnkdError, match="classifier"):
        build_method("saliency", s, t, {"stage": "block2:layer1"})
