"""``blockwise``: block-wise replacement KD (hybrid networks through the frozen teacher)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from method_helpers import (
    B,
    MethodContract,
    Y,
    close,
    models,
    n,
    np_ce,
    np_conv1x1_bn_eval,
    np_kd,
    resized_teacher,
    run_eval,
)

from snnkd.cli.main import main
from snnkd.errors import SnnkdError
from snnkd.methods import build_method


class TestContract(MethodContract):
    name = "blockwise"
    params = {"stages": ["layer1"]}
    adapters = True

    def check_end_to_end(self, out, rec: dict, tmp_path) -> None:
        assert {"bw_acc_snn", "bw_acc_M_layer1", "bw_cos_layer1"} <= set(rec)
        assert main(["plot-blockwise", "--metrics", str(out / "metrics.jsonl"), "--out", str(tmp_path / "fig")]) == 0
        for f in ("fig2_cosine.png", "fig3_val_acc.png"):
            assert (tmp_path / "fig" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_blockwise_value_matches_numpy(pair):
    s, t, x = pair
    m = build_method("blockwise", s, t, {"stages": ["layer1"]})
    out, so, to = run_eval(m, s, t, x)
    phi = m.maps["layer1"]
    mapped = np.maximum(np_conv1x1_bn_eval(n(so.rates["layer1"]), n(phi[0].weight), phi[1]), 0)  # relu default
    z_m = n(t.forward_from("layer1", torch.from_numpy(mapped).float()))
    zs, za = n(so.logits), n(to.logits)
    assert out.terms["ce"].item() == pytest.approx(np_ce(zs, Y.numpy()), rel=1e-5)
    assert out.terms["ce_M_layer1"].item() == pytest.approx(np_ce(z_m, Y.numpy()), rel=1e-4)
    assert out.terms["kd"].item() == close(0.3 * np_kd(zs, za, 3.0))
    assert out.terms["kd_M_layer1"].item() == close(0.3 * np_kd(z_m, za, 3.0))


def test_blockwise_without_replaced_stage_is_logit_kd(pair):
    s, t, x = pair
    bw = build_method("blockwise", s, t, {"stages": [], "tau": 4.0, "ce_weight": 0.1, "kd_weight": 0.9})
    lg = build_method("logit", s, t, {"tau": 4.0, "alpha": 0.9})
    s.eval()
    a, b = bw(s, t, x, Y), lg(s, t, x, Y)
    assert set(a.terms) == {"ce", "kd"}
    assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-6)
    assert len(list(bw.parameters())) == 0


def test_blockwise_gradient_flows_through_frozen_teacher(pair):
    """The hybrid CE alone trains phi_k and student stages up to k, not layer2."""
    s, t, x = pair
    m = build_method("blockwise", s, t, {"stages": ["layer1"], "kd_weight": 0.0})
    out = m(s, t, x, Y)
    out.terms["ce_M_layer1"].backward()
    assert s.stages["layer1"][0].conv1[0].weight.grad.abs().sum() > 0
    assert s.stages["layer2"][0].conv1[0].weight.grad is None
    assert m.maps["layer1"][0].weight.grad.abs().sum() > 0


def test_blockwise_epoch_metrics(pair):
    s, t, x = pair
    m = build_method("blockwise", s, t, {"stages": ["layer1"]})
    s.eval()
    loader = [(x, Y), (x[:2], Y[:2])]
    rec = m.epoch_metrics(s, t, loader, torch.device("cpu"))
    assert set(rec) == {"bw_acc_snn", "bw_acc_M_layer1", "bw_cos_layer1"}
    pred = torch.cat([s(x).argmax(1), s(x[:2]).argmax(1)])
    assert rec["bw_acc_snn"] == pytest.approx(100.0 * (pred == torch.cat([Y, Y[:2]])).float().mean().item())
    m.eval()
    with torch.no_grad():
        mp = m.maps["layer1"](s.forward_stages(x).rates["layer1"]).flatten(1)
        tf = t.forward_stages(x).features["layer1"].flatten(1)
    cos = (mp * tf).sum(1) / (mp.norm(dim=1) * tf.norm(dim=1))
    expect = (cos.sum() + cos[:2].sum()) / 6
    assert rec["bw_cos_layer1"] == pytest.approx(expect.item(), rel=1e-4)


def test_blockwise_needs_matching_stage_names():
    s, t = models("vgg_tiny", "resnet_tiny_wide")
    with pytest.raises(SnnkdError, match="same stage names"):
        build_method("blockwise", s, t, {})


def test_blockwise_spatial_mismatch_is_resized():
    s, t = resized_teacher()
    x = torch.rand(B, 1, 8, 8) * 3.0
    m = build_method("blockwise", s, t, {"stages": ["layer1"]})
    assert torch.isfinite(m(s, t, x, Y).loss)


def test_plot_blockwise_refuses_other_metrics(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text(json.dumps({"epoch": 1, "val_acc": 50.0}) + "\n")
    assert main(["plot-blockwise", "--metrics", str(p), "--out", str(tmp_path / "f")]) == 2


def test_training_loop_runs_the_student_once_per_validation_batch(tmp_path):
    """The loop feeds the block-wise figures from its own validation pass: the student runs
    once per validation batch (it ran twice before), and the figures equal those of a
    separate :meth:`epoch_metrics` pass over the same data."""
    from snnkd.data import build_datasets
    from snnkd.train.loop import FitConfig, fit

    s, t = models()
    train, val, _ = build_datasets("digits")
    train = torch.utils.data.Subset(train, range(64))
    m = build_method("blockwise", s, t, {"stages": ["layer1"]})
    eval_calls = []
    s.stem.register_forward_hook(lambda mod, inp, out: eval_calls.append(len(inp[0])) if not mod.training else None)
    cfg = FitConfig(epochs=1, batch_size=32, lr=0.05, seed=0, trainer="bptt", progress=False)
    (rec,) = fit(s, t, m, train, val, cfg, tmp_path / "state.pt", tmp_path / "m.jsonl", torch.device("cpu"))
    val_batches = -(-len(val) // 128)
    assert len(eval_calls) == val_batches and sum(eval_calls) == len(val) * s.T
    assert rec["bw_acc_snn"] == pytest.approx(rec["val_acc"])
    again = m.epoch_metrics(s.eval(), t, torch.utils.data.DataLoader(val, batch_size=128), torch.device("cpu"))
    assert {k: rec[k] for k in again} == pytest.approx(again)
