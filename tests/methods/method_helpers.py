"""What the per-method test files share: numpy reference formulas, the tiny student/teacher
pair, and :class:`MethodContract`, the tests every method must pass.  A method's test file
subclasses it once, naming the method and the hyperparameters its generic tests use."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from snnkd import io
from snnkd.cli.main import main
from snnkd.methods import build_method, freeze, get_method
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


def np_conv1x1_nobn(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("oc,bchw->bohw", w[:, :, 0, 0], x)


def close(v: float):
    """float32 losses vs float64 references: relative 1e-4, absolute 5e-6 for tiny KLs."""
    return pytest.approx(v, rel=1e-4, abs=5e-6)


def n(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# ---------------------------------------------------------------- models
def models(student_arch: str = "resnet_tiny", teacher_arch: str = "resnet_tiny_wide"):
    torch.manual_seed(0)
    teacher = freeze(create_model(teacher_arch, None, K, 1, 8))
    student = create_model(student_arch, NeuronConfig(kind="lif", decay=0.5), K, 1, 8, T=T)
    return student, teacher


def run_eval(method, s, t, x):
    """Method and student in eval mode (running BN statistics), so a separate forward
    of the models gives the very tensors the method saw."""
    s.eval()
    method.eval()
    out = method(s, t, x, Y)
    return out, s.forward_stages(x), t.forward_stages(x, preacts=True)


def resized_teacher():
    """The pair with the teacher's layer2 pooled to 2x2 (the student's is 4x4)."""
    s, t = models()
    t.stages["layer2"].append(torch.nn.AvgPool2d(2))  # teacher's layer2 now at reduction 4
    t.feature_info[1] = {**t.feature_info[1], "reduction": 4}
    assert t.forward_stages(torch.zeros(1, 1, 8, 8)).features["layer2"].shape[-1] == 2
    return s, t


# ---------------------------------------------------------------- the contract
class MethodContract:
    """The tests every method passes.  Subclass as ``TestContract`` with ``name`` (the
    registered method), ``params`` (hyperparameters for these tests) and ``adapters``
    (whether the method trains parameters of its own)."""

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    adapters: ClassVar[bool] = False

    def build(self, s, t):
        teacher = t if get_method(self.name).needs_teacher else None
        return build_method(self.name, s, teacher, dict(self.params))

    def test_gradients_reach_student_and_adapters_not_teacher(self, pair):
        s, t, x = pair
        m = self.build(s, t)
        s.train()
        m.train()
        m(s, t, x, Y).loss.backward()
        for pname, p in s.named_parameters():
            assert p.grad is not None, f"student {pname} got no gradient"
        assert any(p.grad.abs().sum() > 0 for p in s.parameters())
        adapters = list(m.named_parameters())
        assert bool(adapters) == self.adapters
        for pname, p in adapters:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"adapter {pname} got no gradient"
        for p in t.parameters():
            assert p.grad is None and not p.requires_grad
        assert not t.training

    def test_rate_trainer_gives_the_bptt_loss_and_trains_adapters(self, pair):
        """Under the rate trainer the student runs once at T = 1 on rates; every term but SAMD
        (whose spike-count map loses its factor T, then min-max normalised) keeps its value."""
        from snnkd.train import rate
        s, t, x = pair
        m = self.build(s, t)
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

    @pytest.mark.slow
    def test_distill_end_to_end(self, teacher_pt, tmp_path):
        """One tiny ``snnkd distill`` with the method's default trainer; returns the last metrics."""
        out = tmp_path / self.name
        args = ["distill", "--method", self.name, "--student", "resnet_tiny", "--dataset", "digits",
                "--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--batch-size", "32",
                "--T", "2", "--out", str(out), "--no-progress"]
        if get_method(self.name).needs_teacher:
            args += ["--teacher", str(teacher_pt)]
        assert main(args) == 0
        rec = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        state, meta = io.load_checkpoint(out / "model.pt")
        student = create_model("resnet_tiny", NeuronConfig(), K, 1, 8, T=2)
        assert set(state) == set(student.state_dict())  # adapters are not in the exported model
        assert meta["method"] == self.name
        assert meta["trainer"] == get_method(self.name).default_trainer
        terms = [k for k in rec if k.startswith("train_") and k not in ("train_acc", "train_loss")]
        assert terms, rec
        assert rec["train_loss"] == pytest.approx(sum(rec[k] for k in terms), rel=1e-4)
        self.check_end_to_end(out, rec, tmp_path)

    def check_end_to_end(self, out, rec: dict, tmp_path) -> None:
        """Method-specific checks of the end-to-end run (default: none)."""
