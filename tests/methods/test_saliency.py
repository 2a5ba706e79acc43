"""``saliency``: SAMD (spike-count map vs the teacher's CAM) plus noisy logit distillation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from method_helpers import (
    B,
    K,
    MethodContract,
    Y,
    close,
    models,
    n,
    np_kl,
    np_log_softmax,
    np_softmax,
)

from snnkd.errors import SnnkdError
from snnkd.methods import build_method
from snnkd.methods.saliency import class_activation_map
from snnkd.models import create_model


class TestContract(MethodContract):
    name = "saliency"


def test_saliency_value_matches_numpy(pair):
    s, t, x = pair
    m = build_method("saliency", s, t, {})
    s.eval()
    torch.manual_seed(7)
    out = m(s, t, x, Y)
    torch.manual_seed(7)
    eps = torch.randn(B, K).double().numpy()
    so, to = s.forward_stages(x), t.forward_stages(x)
    # SAMD: spike counts summed over time and channels vs the teacher's CAM
    a_s = n(so.features["layer2"]).sum((0, 2))
    W = n(t.head.fc.weight)
    yhat = n(to.logits).argmax(1)
    a_t = np.maximum(np.einsum("bc,bchw->bhw", W[yhat], n(to.features["layer2"])), 0)

    def norm_soft(a):
        a = a - a.min()  # CKDSNN's compute_cam: shift, then divide by the shifted max
        a = a / (a.max() + 1e-3)
        return a.reshape(B, -1) / 2.0
    samd = np_kl(np_softmax(norm_soft(a_t)), np_log_softmax(norm_soft(a_s)))
    zs, za = n(so.logits), n(to.logits)
    mu, sd = zs.mean(1, keepdims=True), zs.std(1, ddof=1, keepdims=True)
    p_s = 0.9 * np_softmax(zs / 2) + 0.1 * np_softmax((mu + eps * sd ** 2) / 2)
    nld = 4 * np_kl(np_softmax(za / 2), np.log(p_s))
    assert out.terms["samd"].item() == close(samd)
    assert out.terms["nld"].item() == close(nld)


def test_class_activation_map_by_hand():
    t = create_model("resnet_tiny", None, 2, 1, 8)
    with torch.no_grad():
        t.head.fc.weight.copy_(torch.zeros(2, 32))
        t.head.fc.weight[1, 0] = 2.0
        t.head.fc.weight[1, 1] = -1.0
    feat = torch.zeros(1, 32, 2, 2)
    feat[0, 0] = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    feat[0, 1] = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    cam = class_activation_map(t, feat, torch.tensor([[0.0, 5.0]]))  # predicted class 1
    assert cam[0].tolist() == [[2.0, 0.0], [5.0, 0.0]]  # ReLU(2*f0 - f1)


def test_nld_without_noise_is_plain_kd(pair):
    s, t, x = pair
    sal = build_method("saliency", s, t, {"noise": 0.0})
    logit = build_method("logit", s, t, {"tau": 2.0, "alpha": 1.0})
    s.eval()
    a = sal(s, t, x, Y).terms["nld"]
    b = logit(s, t, x, Y).terms["kd"]
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    noisy = build_method("saliency", s, t, {"noise": 0.5})(s, t, x, Y).terms["nld"]
    assert abs(noisy.item() - a.item()) > 1e-4


def test_saliency_needs_gap_linear_head():
    s, t = models("vgg_tiny", "vgg_tiny")  # flatten + fc head
    with pytest.raises(SnnkdError, match="global-average-pool"):
        build_method("saliency", s, t, {})
    s, t = models()
    with pytest.raises(SnnkdError, match="global-average-pool"):  # layer1 does not feed the head
        build_method("saliency", s, t, {"stage": "layer1"})


def test_saliency_missing_stage_and_bad_noise_are_refused():
    s, t = models()
    with pytest.raises(SnnkdError, match="layer9"):
        build_method("saliency", s, t, {"stage": "layer9"})
    with pytest.raises(SnnkdError, match="noise"):
        build_method("saliency", s, t, {"noise": 1.5})
