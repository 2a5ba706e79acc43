"""``--precision``: bf16 runs close to fp32, neuron state and loss stay fp32, spikes stay
binary, fp16 is refused off CUDA, and a bf16 run resumes bitwise (issue 12)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from resume_utils import metrics, snnkd, snnkd_killed, weights_differences

from snnkd.methods import build_method
from snnkd.models import create_model
from snnkd.neurons import NeuronConfig, SpikingNeuron
from snnkd.train import rate as _rate  # noqa: F401  (registers the rate trainer)
from snnkd.train.trainers import Precision, get_trainer, use_precision

DATA = ["--dataset", "digits", "--limit-train", "96", "--batch-size", "32", "--no-progress", "--seed", "2"]


def _snn(T: int = 4, reset: str = "hard"):
    torch.manual_seed(0)
    cfg = NeuronConfig(kind="lif", decay=0.5, reset=reset) if reset == "soft" else NeuronConfig()
    return create_model("resnet_tiny", cfg, 10, 3, 16, T)


def _batch(n: int = 8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 16, 16, generator=g) * 2, torch.randint(0, 10, (n,), generator=g)


def test_bf16_outputs_close_to_fp32():
    """The same weights and input: ANN logits within bf16 rounding, SNN logits mostly equal."""
    x, _ = _batch(16)
    torch.manual_seed(0)
    ann = create_model("resnet_tiny", None, 10, 3, 16).eval()
    snn = _snn().eval()
    for net, tol in ((ann, 0.1), (snn, 0.15)):
        with torch.no_grad():
            z32 = net(x)
            with Precision("bf16", x.device).forward():
                z16 = net(x)
        assert z16.dtype == torch.float32  # the linear head's output is cast back: the loss is fp32
        rel = (z16 - z32).norm() / z32.norm()
        assert rel < tol, rel
        assert not torch.equal(z16, z32)  # bf16 really ran: the result is not the fp32 one
        assert (z16.argmax(1) == z32.argmax(1)).float().mean() >= 0.75


@pytest.mark.parametrize("mode", ["spike", "record"])
def test_neuron_state_fp32_and_spikes_binary_under_bf16(mode):
    neuron = SpikingNeuron(NeuronConfig(kind="lif", decay=0.9), T=4)
    neuron.mode = mode
    x = (torch.randn(4 * 6, 5) * 1.5).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        s = neuron(x)
    assert neuron.v.dtype == torch.float32
    assert s.dtype == torch.bfloat16  # back in the current's dtype: the next layer's, no cast there
    assert set(s.unique().tolist()) <= {0.0, 1.0} and s.sum() > 0
    ref = SpikingNeuron(NeuronConfig(kind="lif", decay=0.9), T=4)
    assert torch.equal(s, ref(x.float()))  # the same spikes as fp32 arithmetic on the same current
    if mode == "record":
        assert neuron.rate_r.dtype == neuron.rate_e.dtype == torch.float32


@pytest.mark.parametrize("reset, detach", [("hard", True), ("hard", False), ("soft", True)])
def test_fused_kernel_takes_a_bf16_current_without_an_fp32_copy(reset, detach):
    """A bf16 current into the fused kernel: the same spikes and the same input gradient
    (rounded to bf16) as the fp32 kernel on that current; spikes and gradient in bf16."""
    torch.manual_seed(3)
    cfg = NeuronConfig(kind="lif", decay=0.8, reset=reset, detach_reset=detach)
    x16 = (torch.randn(4 * 8, 6) * 1.5).to(torch.bfloat16).requires_grad_()
    x32 = x16.detach().float().requires_grad_()
    w = torch.randn(4 * 8, 6).to(torch.bfloat16).float()  # exact in bf16: both see one upstream gradient
    outs = {}
    for x in (x16, x32):
        s = SpikingNeuron(cfg, T=4)(x)
        (s.float() * w).sum().backward()
        outs[x.dtype] = s
    assert outs[torch.bfloat16].dtype == x16.grad.dtype == torch.bfloat16
    assert torch.equal(outs[torch.bfloat16].float(), outs[torch.float32])
    assert x32.grad.abs().sum() > 0
    assert torch.equal(x16.grad, x32.grad.to(torch.bfloat16))


def test_stage_rates_are_fp32_under_bf16():
    """The spikes come back in bf16, but the stage features and rates that KD terms read are fp32,
    equal to those of the same forward with fp32 spikes handed on."""
    snn = _snn().eval()
    x, _ = _batch(4)
    with torch.no_grad(), Precision("bf16", x.device).forward():
        out = snn.forward_stages(x)
    for name, r in out.rates.items():
        assert r.dtype == out.features[name].dtype == torch.float32, name
        assert torch.all((r * snn.T).round() == r * snn.T)  # rates of spike counts over T steps


def test_threshold_is_decided_in_fp32():
    """bf16 currents 0.5 then 0.50390625: their fp32 sum 1.0039 crosses the threshold 1;
    summed in bf16 (steps of 2^-7 near 1) it rounds to exactly 1.0 and would not fire."""
    neuron = SpikingNeuron(NeuronConfig(threshold=1.0), T=2)
    x = torch.tensor([[0.5], [0.50390625]], dtype=torch.bfloat16)
    assert (x[0] + x[1]).item() == 1.0  # what bf16 membrane arithmetic would decide on
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = neuron(x)
    assert s.tolist() == [[0.0], [1.0]]
    assert neuron.v.dtype == torch.float32


@pytest.mark.parametrize("trainer", ["bptt", "rate"])
def test_step_loss_fp32_and_gradients_close(trainer):
    """A bf16 training step: fp32 loss and fp32 gradients pointing the same way as fp32's."""
    x, y = _batch()
    grads = {}
    for prec in ("fp32", "bf16"):
        net = _snn(T=2, reset="soft")
        method = build_method("none", net, None, {})
        with use_precision(Precision(prec, "cpu")):
            out = get_trainer(trainer)(net, None, method, x, y)
        assert out.loss.dtype == torch.float32
        grads[prec] = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        assert grads[prec].dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
    assert cos > 0.8, cos  # spikes near threshold flip under bf16 rounding: measured 0.88 (bptt)


def test_fp16_scaler_path_unscales_before_the_step():
    """The CUDA fp16 path, run on the CPU: scaled backward, the step sees the true gradient."""
    x, y = _batch()
    updates = {}
    for prec in ("fp32", "fp16"):
        net = _snn(T=2)
        method = build_method("none", net, None, {})
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        before = [p.detach().clone() for p in net.parameters()]
        p = Precision(prec, "cpu", allow_cpu_fp16=True)
        with use_precision(p):
            get_trainer("bptt")(net, None, method, x, y)
        if prec == "fp16":
            assert p.scaler is not None and p.state_dict()["scale"] > 1
            assert max(q.grad.abs().max() for q in net.parameters() if q.grad is not None) > 10  # scaled
        p.step(opt)
        updates[prec] = torch.cat([(q.detach() - b).flatten() for q, b in zip(net.parameters(), before)])
    cos = torch.nn.functional.cosine_similarity(updates["fp32"], updates["fp16"], dim=0)
    assert cos > 0.9 and updates["fp16"].norm() < 2 * updates["fp32"].norm()


@pytest.mark.slow
def test_fp16_refused_on_cpu(tmp_path):
    out = tmp_path / "run"
    r = snnkd(["distill", "--student", "resnet_tiny", "--T", "2", "--epochs", "1", "--precision", "fp16",
               "--device", "cpu", "--out", str(out), *DATA])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "snnkd: error: precision fp16 needs a CUDA device (this run uses cpu); use bf16 on the CPU"]
    assert not out.exists() or not any(out.iterdir())


def _distill(out: Path, precision: str, trainer: str = "bptt") -> list[str]:
    return ["distill", "--student", "resnet_tiny", "--method", "none", "--trainer", trainer, "--T", "2",
            "--epochs", "2", "--precision", precision, "--out", str(out), *DATA]


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["bptt", "rate"])
def test_bf16_distill_resumes_bitwise_and_refuses_other_precision(tmp_path, trainer):
    ref, run = tmp_path / "ref", tmp_path / "run"
    r = snnkd(_distill(ref, "bf16", trainer))
    assert r.returncode == 0, r.stderr
    killed = snnkd_killed("step", 5, _distill(run, "bf16", trainer))  # mid-epoch 2 (3 steps per epoch)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = run / "train_state.pt"
    assert state.is_file()
    before = state.read_bytes()
    other = snnkd(_distill(run, "fp32", trainer))
    assert other.returncode == 2
    assert "different settings (precision: 'bf16' then, 'fp32' now)" in other.stderr
    assert state.read_bytes() == before  # the refused run left the state alone
    again = snnkd(_distill(run, "bf16", trainer))
    assert again.returncode == 0, again.stderr
    assert "after epoch 1" in again.stderr
    assert weights_differences(ref / "model.pt", run / "model.pt") == []
    assert metrics(run / "metrics.jsonl") == metrics(ref / "metrics.jsonl")


@pytest.mark.slow
def test_evaluate_bf16(tmp_path):
    out = tmp_path / "m"
    assert snnkd(["pretrain", "--model", "resnet_tiny", "--epochs", "1", "--out", str(out), *DATA]).returncode == 0
    res = {}
    for prec in ("fp32", "bf16"):
        r = snnkd(["evaluate", "--model", str(out / "model.pt"), "--out", str(tmp_path / f"{prec}.json"),
                   "--precision", prec, "--limit-test", "64", "--device", "cpu"])
        assert r.returncode == 0, r.stderr
        res[prec] = json.loads((tmp_path / f"{prec}.json").read_text())
    assert res["bf16"]["options"]["precision"] == "bf16"
    assert abs(res["bf16"]["accuracy"] - res["fp32"]["accuracy"]) <= 5.0
    assert abs(res["bf16"]["loss"] - res["fp32"]["loss"]) < 0.05 * res["fp32"]["loss"]
