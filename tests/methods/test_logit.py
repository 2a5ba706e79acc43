"""``logit``: response-based KD, values against numpy and hyperparameter checks."""

from __future__ import annotations

import pytest
from method_helpers import MethodContract, Y, close, models, n, np_ce, np_kd, run_eval

from snnkd.errors import SnnkdError
from snnkd.methods import build_method


class TestContract(MethodContract):
    name = "logit"


def test_logit_value_matches_numpy(pair):
    s, t, x = pair
    m = build_method("logit", s, t, {"tau": 3.0, "alpha": 0.7})
    out, so, to = run_eval(m, s, t, x)
    assert out.terms["ce"].item() == pytest.approx(0.3 * np_ce(n(so.logits), Y.numpy()), rel=1e-5)
    assert out.terms["kd"].item() == close(0.7 * np_kd(n(so.logits), n(to.logits), 3.0))


def test_logit_bad_hyperparameters_are_refused():
    s, t = models()
    with pytest.raises(SnnkdError, match="tau > 0"):
        build_method("logit", s, t, {"tau": 0.0})
    with pytest.raises(SnnkdError, match="needs a teacher"):
        build_method("logit", s, None, {})
