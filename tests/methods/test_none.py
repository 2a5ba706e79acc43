"""``none``: the direct-training baseline, plain cross-entropy, no teacher."""

from __future__ import annotations

import pytest
import torch.nn.functional as F
from method_helpers import MethodContract, Y, models

from snnkd.methods import build_method, get_method


class TestContract(MethodContract):
    name = "none"


def test_none_is_cross_entropy_without_a_teacher(pair):
    s, _, x = pair
    assert not get_method("none").needs_teacher
    m = build_method("none", s, None, {})
    s.eval()
    out = m(s, None, x, Y)
    assert set(out.terms) == {"ce"}
    assert out.loss.item() == pytest.approx(F.cross_entropy(s(x), Y).item(), rel=1e-6)


def test_none_takes_no_hyperparameters():
    s, t = models()
    with pytest.raises(Exception, match="has no hyperparameter tau"):
        build_method("none", s, None, {"tau": 4})
