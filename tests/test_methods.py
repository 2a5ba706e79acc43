"""Distillation methods: loss values against independent numpy formulas, gradients,
properties, construction checks, and one tiny ``snnkd distill`` per method."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snnkd import io
from snnkd.cli.main import main
from snnkd.errors import SnnkdError
from snnkd.methods import build_method, freeze, list_methods
from snnkd.methods.feature import partial_l2
from snnkd.methods.relation import relation_loss
from snnkd.methods.saliency import class_activation_map
from snnkd.models import create_model
from snnkd.neurons import NeuronConfig

B, K, T = 4, 10, 2
Y = torch.tensor([0, 3, 5, 9])


# ---------------------------------------------------------------- numpy references
def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def np_softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(np_log_softmax(z))


def np_kl(p: np.ndarray, log_q: np.ndarray) -> float:
    """batchmean KL(p || q)."""
    return float(np.sum(np.where(p > 0, p * (np.log(np.maximum(p, 1e-30)) - log_q), 0.0)) / p.shape[0])


def np_ce(z: np.ndarray, y: np.ndarray) -> float:
    return float(-np_log_softmax(z)[np.arange(len(y)), y].mean())


def np_kd(zs: np.ndarray, za: np.ndarray, tau: float) -> float:
    return tau * tau * np_kl(np_softmax(za / tau), np_log_softmax(zs / tau))


def np_conv1x1_bn_eval(x: np.ndarray, conv_w: np.ndarray, bn) -> np.ndarray:
    """1x1 conv (no bias) then BN with its running statistics."""
    y = np.einsum("oc,bchw->bohw", conv_w[:, :, 0, 0], x)
    mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
    w, b = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    return (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + bn.eps) * w[:, None, None] + b[:, None, None]


def close(v: float):
    """float32 losses vs float64 references: relative 1e-4, absolute 5e-6 for tiny KLs."""
    return pytest.approx(v, rel=1e-4, abs=5e-6)


def n(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# ---------------------------------------------------------------- fixtures
def models(student_arch: str = "resnet_tiny", teacher_arch: str = "resnet_tiny_wide"):
    torch.manual_seed(0)
    teacher = freeze(create_model(teacher_arch, None, K, 1, 8))
    student = create_model(student_arch, NeuronConfig(kind="lif", decay=0.5), K, 1, 8, T=T)
    return student, teacher


@pytest.fixture
def pair():
    s, t = models()
    torch.manual_seed(1)
    x = torch.rand(B, 1, 8, 8) * 3.0
    return s, t, x


def run_eval(method, s, t, x):
    """Method and student in eval mode (running BN statistics), so a separate forward
    of the models gives the very tensors the method saw."""
    s.eval()
    method.eval()
    out = method(s, t, x, Y)
    return out, s.forward_stages(x), t.forward_stages(x, preacts=True)


# ---------------------------------------------------------------- values
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


def np_conv1x1_nobn(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("oc,bchw->bohw", w[:, :, 0, 0], x)


def test_blurred_mask_keeps_channels_at_rate():
    from snnkd.methods.blurred import channel_mask
    torch.manual_seed(0)
    mk = channel_mask(200, 50, 0.85, torch.zeros(1))
    assert mk.shape == (200, 50, 1, 1) and set(mk.unique().tolist()) == {0.0, 1.0}
    assert abs(mk.mean().item() - 0.85) < 0.02


# ---------------------------------------------------------------- properties
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


@pytest.mark.parametrize("c_s,c_a", [(3.0, 1.0), (1.0, 0.01), (250.0, 7.0)])
def test_relation_loss_invariant_to_feature_scale(c_s, c_a):
    torch.manual_seed(0)
    fs, fa = torch.rand(6, 20), torch.randn(6, 8, 2, 2)
    base = relation_loss(fs, fa)
    assert base.item() > 1e-3
    assert relation_loss(c_s * fs, c_a * fa).item() == pytest.approx(base.item(), rel=1e-5)


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


def test_blockwise_without_replaced_stage_is_logit_kd(pair):
    s, t, x = pair
    bw = build_method("blockwise", s, t, {"stages": [], "tau": 4.0, "ce_weight": 0.1, "kd_weight": 0.9})
    lg = build_method("logit", s, t, {"tau": 4.0, "alpha": 0.9})
    s.eval()
    a, b = bw(s, t, x, Y), lg(s, t, x, Y)
    assert set(a.terms) == {"ce", "kd"}
    assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-6)
    assert len(list(bw.parameters())) == 0


# ---------------------------------------------------------------- gradients
ADAPTED = {"feature": {"stages": ["layer1", "layer2"]}, "blockwise": {"stages": ["layer1"]}, "blurred": {}}


@pytest.mark.parametrize("name", list_methods())
def test_gradients_reach_student_and_adapters_not_teacher(name, pair):
    s, t, x = pair
    m = build_method(name, s, t if name != "none" else None, ADAPTED.get(name, {}))
    s.train()
    m.train()
    out = m(s, t, x, Y)
    out.loss.backward()
    for pname, p in s.named_parameters():
        assert p.grad is not None, f"student {pname} got no gradient"
    assert any(p.grad.abs().sum() > 0 for p in s.parameters())
    adapters = list(m.named_parameters())
    assert bool(adapters) == (name in ADAPTED)
    for pname, p in adapters:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"adapter {pname} got no gradient"
    for p in t.parameters():
        assert p.grad is None and not p.requires_grad
    assert not t.training


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


# ---------------------------------------------------------------- construction checks
def test_missing_stage_is_refused():
    s, t = models()
    with pytest.raises(SnnkdError, match="no such stage"):
        build_method("feature", s, t, {"stages": ["layer9"]})
    with pytest.raises(SnnkdError, match="layer9"):
        build_method("saliency", s, t, {"stage": "layer9"})


def test_spatial_mismatch_is_resized():
    """A teacher map of another size (here 2x2 against the student's 4x4) is brought to the
    student's size, so the loss is finite and reaches the student (was refused before)."""
    s, t = models()
    t.stages["layer2"].append(torch.nn.AvgPool2d(2))  # teacher's layer2 now at reduction 4
    t.feature_info[1] = {**t.feature_info[1], "reduction": 4}
    assert t.forward_stages(torch.zeros(1, 1, 8, 8)).features["layer2"].shape[-1] == 2
    x = torch.rand(B, 1, 8, 8) * 3.0
    for name, params in [("feature", {"stages": ["layer2"]}), ("blurred", {}), ("blockwise", {"stages": ["layer1"]})]:
        m = build_method(name, s, t, params)
        out = m(s, t, x, Y)
        assert torch.isfinite(out.loss), name


def test_saliency_needs_gap_linear_head():
    s, t = models("vgg_tiny", "vgg_tiny")  # flatten + fc head
    with pytest.raises(SnnkdError, match="global-average-pool"):
        build_method("saliency", s, t, {})
    s, t = models()
    with pytest.raises(SnnkdError, match="global-average-pool"):  # layer1 does not feed the head
        build_method("saliency", s, t, {"stage": "layer1"})


def test_blockwise_needs_matching_stage_names():
    s, t = models("vgg_tiny", "resnet_tiny_wide")
    with pytest.raises(SnnkdError, match="same stage names"):
        build_method("blockwise", s, t, {})


def test_bad_hyperparameters_are_refused():
    s, t = models()
    with pytest.raises(SnnkdError, match="noise"):
        build_method("saliency", s, t, {"noise": 1.5})
    with pytest.raises(SnnkdError, match="keep"):
        build_method("blurred", s, t, {"keep": 0.0})
    with pytest.raises(SnnkdError, match="beta must be a number"):
        build_method("relation", s, t, {"beta": "ten"})
    # YAML reads 1e-4 (no dot) as a string: accepted as the number it spells
    assert build_method("feature", s, t, {"alpha": "1e-4"}).alpha == 1e-4


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def teacher_pt(tmp_path_factory):
    d = tmp_path_factory.mktemp("teacher")
    rc = main(["pretrain", "--model", "resnet_tiny_wide", "--dataset", "digits", "--epochs", "1",
               "--limit-train", "256", "--limit-test", "64", "--batch-size", "64", "--out", str(d),
               "--no-progress"])
    assert rc == 0
    return d / "model.pt"


@pytest.mark.slow
@pytest.mark.parametrize("name", list_methods())
def test_distill_end_to_end(name, teacher_pt, tmp_path):
    out = tmp_path / name
    args = ["distill", "--method", name, "--student", "resnet_tiny", "--dataset", "digits", "--epochs", "1",
            "--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--T", "2",
            "--out", str(out), "--no-progress"]
    if name != "blockwise":  # blockwise runs with its default trainer, rate
        args += ["--trainer", "bptt"]
    if name != "none":
        args += ["--teacher", str(teacher_pt)]
    assert main(args) == 0
    rec = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    state, meta = io.load_checkpoint(out / "model.pt")
    student = create_model("resnet_tiny", NeuronConfig(), K, 1, 8, T=2)
    assert set(state) == set(student.state_dict())  # adapters are not in the exported model
    assert meta["method"] == name
    assert meta["trainer"] == ("rate" if name == "blockwise" else "bptt")
    terms = [k for k in rec if k.startswith("train_") and k not in ("train_acc", "train_loss")]
    assert terms, rec
    assert rec["train_loss"] == pytest.approx(sum(rec[k] for k in terms), rel=1e-4)
    if name == "blockwise":
        assert {"bw_acc_snn", "bw_acc_M_layer1", "bw_cos_layer1"} <= set(rec)
        assert main(["plot-blockwise", "--metrics", str(out / "metrics.jsonl"), "--out", str(tmp_path / "fig")]) == 0
        for f in ("fig2_cosine.png", "fig3_val_acc.png"):
            assert (tmp_path / "fig" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_blockwise_refuses_other_metrics(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text(json.dumps({"epoch": 1, "val_acc": 50.0}) + "\n")
    assert main(["plot-blockwise", "--metrics", str(p), "--out", str(tmp_path / "f")]) == 2


@pytest.mark.parametrize("name", list_methods())
def test_rate_trainer_gives_the_bptt_loss_and_trains_adapters(name, pair):
    """Under the rate trainer the student runs once at T = 1 on rates; every term but SAMD
    (whose spike-count map loses its factor T, then min-max normalised) keeps its value."""
    rate = pytest.importorskip("snnkd.train.rate")
    s, t, x = pair
    m = build_method(name, s, t if name != "none" else None, ADAPTED.get(name, {}))
    torch.manual_seed(3)
    ref = m(s, t, x, Y).terms
    s.zero_grad()
    torch.manual_seed(3)
    out = rate.rate_step(s, t, m, x, Y)
    assert set(out.terms) == set(ref)
    for k in ref:
        tol = dict(rel=0.05) if k == "samd" else dict(rel=1e-4, abs=1e-6)
        assert out.terms[k].item() == pytest.approx(ref[k].item(), **tol), k
    for _, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in t.parameters())
