"""``blurred``: blurred knowledge distillation (masked student features -> generator) + WSLD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from method_helpers import (
    B,
    MethodContract,
    Y,
    models,
    n,
    np_conv1x1_nobn,
    np_log_softmax,
    np_softmax,
    resized_teacher,
    run_eval,
)

from snnkd.errors import SnnkdError
from snnkd.methods import build_method
from snnkd.methods.blurred import channel_mask


class TestContract(MethodContract):
    name = "blurred"
    adapters = True


def test_blurred_value_matches_numpy(pair):
    s, t, x = pair
    m = build_method("blurred", s, t, {"keep": 1.0, "alpha": 0.01, "tau": 2.0})
    out, so, to = run_eval(m, s, t, x)
    f_s = torch.from_numpy(np_conv1x1_nobn(n(so.rates["layer2"]), n(m.align.weight))).float()
    g = n(m.generator(f_s))
    bkd = ((g - n(to.features["layer2"])) ** 2).sum() / B
    zs, za, y = n(so.logits), n(to.logits), Y.numpy()
    ce_s = -np_log_softmax(zs)[np.arange(B), y]
    ce_a = -np_log_softmax(za)[np.arange(B), y]
    w = 1 - np.exp(-ce_s / ce_a)
    soft = -(np_softmax(za / 2) * np_log_softmax(zs / 2)).sum(1)
    assert out.terms["bkd"].item() == pytest.approx(0.01 * bkd, rel=1e-4)
    assert out.terms["wsld"].item() == pytest.approx(4 * (w * soft).mean(), rel=1e-4)


def test_blurred_mask_keeps_channels_at_rate():
    torch.manual_seed(0)
    mk = channel_mask(200, 50, 0.85, torch.zeros(1))
    assert mk.shape == (200, 50, 1, 1) and set(mk.unique().tolist()) == {0.0, 1.0}
    assert abs(mk.mean().item() - 0.85) < 0.02


def test_blurred_spatial_mismatch_is_resized():
    s, t = resized_teacher()
    x = torch.rand(B, 1, 8, 8) * 3.0
    m = build_method("blurred", s, t, {})
    assert torch.isfinite(m(s, t, x, Y).loss)


def test_blurred_keep_zero_is_refused():
    s, t = models()
    with pytest.raises(SnnkdError, match="keep"):
        build_method("blurred", s, t, {"keep": 0.0})
