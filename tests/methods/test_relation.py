"""``relation``: relation (similarity-matrix) KD plus logit KD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from method_helpers import B, MethodContract, close, models, n, np_kd, run_eval

from snnkd.errors import SnnkdError
from snnkd.methods import build_method
from snnkd.methods.relation import relation_loss


class TestContract(MethodContract):
    name = "relation"


def test_relation_value_matches_numpy(pair):
    s, t, x = pair
    m = build_method("relation", s, t, {"beta": 2.0, "alpha": 0.5, "tau": 3.0})
    out, so, to = run_eval(m, s, t, x)
    fs = n(so.rates["layer2"]).mean((2, 3))
    fa = n(to.features["layer2"]).mean((2, 3))
    fs = fs / np.maximum(np.linalg.norm(fs, axis=1, keepdims=True), 1e-12)
    fa = fa / np.linalg.norm(fa, axis=1, keepdims=True)
    rel = ((fs @ fs.T - fa @ fa.T) ** 2).sum() / B ** 2
    assert out.terms["rel"].item() == pytest.approx(2.0 * rel, rel=1e-4)
    assert out.terms["kd"].item() == close(0.5 * np_kd(n(so.logits), n(to.logits), 3.0))


@pytest.mark.parametrize("c_s,c_a", [(3.0, 1.0), (1.0, 0.01), (250.0, 7.0)])
def test_relation_loss_invariant_to_feature_scale(c_s, c_a):
    torch.manual_seed(0)
    fs, fa = torch.rand(6, 20), torch.randn(6, 8, 2, 2)
    base = relation_loss(fs, fa)
    assert base.item() > 1e-3
    assert relation_loss(c_s * fs, c_a * fa).item() == pytest.approx(base.item(), rel=1e-5)


def test_relation_bad_hyperparameters_are_refused():
    s, t = models()
    with pytest.raises(SnnkdError, match="beta must be a number"):
        build_method("relation", s, t, {"beta": "ten"})
