"""``feature``: partial-L2 feature KD through connectors."""

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
    np_ce,
    np_conv1x1_bn_eval,
    resized_teacher,
    run_eval,
)

from snnkd.errors import SnnkdError
from snnkd.methods import build_method
from snnkd.methods.feature import partial_l2


class TestContract(MethodContract):
    name = "feature"
    params = {"stages": ["layer1", "layer2"]}
    adapters = True


def test_feature_value_matches_numpy(pair):
    s, t, x = pair
    m = build_method("feature", s, t, {"stages": ["layer1", "layer2"], "alpha": 0.01})
    out, so, to = run_eval(m, s, t, x)
    total = 0.0
    for st in ["layer1", "layer2"]:
        conn = m.connectors[st]
        S = np_conv1x1_bn_eval(n(so.rates[st]), n(conn[0].weight), conn[1])
        tt = n(to.preacts[st])
        d = np.where((S <= tt) & (tt <= 0), 0.0, (tt - S) ** 2)
        total += d.sum() / B
    assert out.terms["feat"].item() == pytest.approx(0.01 * total, rel=1e-4)
    assert out.terms["ce"].item() == pytest.approx(np_ce(n(so.logits), Y.numpy()), rel=1e-5)


def test_partial_l2_zero_where_student_below_nonpositive_teacher():
    torch.manual_seed(0)
    t = -torch.rand(3, 4, 5, 5)  # teacher <= 0 everywhere
    s = t - torch.rand(3, 4, 5, 5)  # S <= t
    assert partial_l2(s, t).item() == 0.0
    s2 = s.clone()
    s2[0, 0, 0, 0] = t[0, 0, 0, 0] + 0.5  # one element with S > t
    assert partial_l2(s2, t).item() == pytest.approx(0.25 / 3)
    tp = torch.full((2, 3), 0.5)  # positive teacher: plain squared error even when S < t
    assert partial_l2(torch.zeros(2, 3), tp).item() == pytest.approx(6 * 0.25 / 2)


def test_feature_missing_stage_is_refused():
    s, t = models()
    with pytest.raises(SnnkdError, match="no such stage"):
        build_method("feature", s, t, {"stages": ["layer9"]})


def test_feature_spatial_mismatch_is_resized():
    """A teacher map of another size (2x2 against the student's 4x4) is brought to the student's size."""
    s, t = resized_teacher()
    x = torch.rand(B, 1, 8, 8) * 3.0
    m = build_method("feature", s, t, {"stages": ["layer2"]})
    assert torch.isfinite(m(s, t, x, Y).loss)


def test_feature_alpha_spelled_1e_minus_4_is_a_number():
    s, t = models()
    # YAML reads 1e-4 (no dot) as a string: accepted as the number it spells
    assert build_method("feature", s, t, {"alpha": "1e-4"}).alpha == 1e-4
