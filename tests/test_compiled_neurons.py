"""``--compile-neurons``: the compiled neuron loops give the eager loops' spikes, rates,
membranes and gradients, a CLI run with it trains, and it is refused with one line where
torch.compile has no C++ compiler (issue 12).  Speed is the benchmark's business
(``benchmarks/train_step.py``, frameworks ``bptt_c`` and ``rate_c``), not a test's."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import torch
from resume_utils import env, metrics, snnkd, snnkd_killed, weights_differences

from snnkd.errors import SnnkdError
from snnkd.neurons import NeuronConfig, multi_step, record_steps
from snnkd.neurons import compiled as compiled_mod
from snnkd.neurons.compiled import compiled_neurons_enabled, use_compiled_neurons

pytestmark = pytest.mark.slow  # each neuron setting compiles once (~10-30 s)
# torch.compile needs a C++ compiler; without one only the refusal can be tested
needs_compiler = pytest.mark.skipif(not compiled_mod._compiler_found(""), reason="no C++ compiler on PATH")

SETTINGS = [(NeuronConfig(), torch.bfloat16),  # the rate trainer's default under --precision bf16
            (NeuronConfig(kind="lif", decay=0.5, reset="soft", detach_reset=False), torch.float32),
            (NeuronConfig(kind="lif", tau=3.0, detach_reset=False, surrogate="sigmoid"), torch.float32)]


def _current(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 1.5 + 0.4).to(dtype)


@needs_compiler
@pytest.mark.parametrize("cfg,dtype", SETTINGS)
def test_compiled_recorder_matches_eager(cfg, dtype):
    """Two layer shapes (one graph, ``dynamic=True``): same spikes, rate and membrane, eligibility
    within fp32 rounding; and the eager path really is what runs outside the block."""
    for shape, v0 in (((4, 8, 16, 12, 12), None), ((4, 8, 32, 6, 6), _current((8, 32, 6, 6), torch.float32, 9))):
        x = _current(shape, dtype)
        eager = record_steps(x, cfg, v0)
        with use_compiled_neurons():
            assert compiled_neurons_enabled()
            comp = record_steps(x, cfg, v0)
        assert not compiled_neurons_enabled()
        assert eager[0].dtype == comp[0].dtype == dtype and eager[1].dtype == comp[1].dtype == torch.float32
        assert 0.05 < eager[1].mean().item() < 0.95  # the neurons fire, but not always
        for name, a, b in zip(("spikes", "r", "v"), (eager[0], eager[1], eager[3]), (comp[0], comp[1], comp[3])):
            assert torch.equal(a, b), name
        torch.testing.assert_close(comp[2], eager[2], rtol=1e-5, atol=1e-6)


@needs_compiler
@pytest.mark.parametrize("cfg,dtype", SETTINGS)
def test_compiled_bptt_kernel_matches_eager(cfg, dtype):
    """The fused BPTT kernel's compiled spike pass: same spikes and membrane, same input gradient."""
    x = _current((4, 6, 16, 10, 10), dtype, seed=3)
    w = _current((4, 6, 16, 10, 10), torch.float32, seed=4)
    out = {}
    for on in (False, True):
        xi = x.clone().requires_grad_(True)
        with use_compiled_neurons(on):
            s, v = multi_step(xi, cfg)
            ((s.float() * w).sum() + v.sum()).backward()
        out[on] = (s, v, xi.grad)
    assert torch.equal(out[False][0], out[True][0]) and torch.equal(out[False][1], out[True][1])
    torch.testing.assert_close(out[True][2].float(), out[False][2].float(), rtol=1e-5, atol=1e-6)


def test_refused_without_a_compiler(monkeypatch):
    monkeypatch.setattr(compiled_mod.shutil, "which", lambda name: None)
    compiled_mod._compiler_found.cache_clear()
    try:
        with pytest.raises(SnnkdError, match="needs a C\\+\\+ compiler"):
            with use_compiled_neurons():
                pass
        assert not compiled_neurons_enabled()
    finally:
        compiled_mod._compiler_found.cache_clear()


@needs_compiler
def test_distill_with_compiled_neurons_and_its_refusal(tmp_path):
    """A real rate-trainer run with the flag learns (loss finite, accuracy recorded); with no
    compiler on PATH the same command stops before any work with one line."""
    data = ["--dataset", "digits", "--limit-train", "96", "--batch-size", "32", "--no-progress", "--seed", "2"]
    args = ["distill", "--student", "resnet_tiny", "--method", "none", "--trainer", "rate", "--T", "2",
            "--epochs", "1", "--precision", "bf16", "--compile-neurons", *data]
    r = snnkd([*args, "--out", str(tmp_path / "run")], timeout=400)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "model.pt").is_file() and "test accuracy" in r.stdout
    bare = {**env(), "PATH": str(tmp_path / "empty"), "CXX": ""}
    r = subprocess.run([sys.executable, "-m", "snnkd", *args, "--out", str(tmp_path / "refused")],
                       capture_output=True, text=True, timeout=120, env=bare)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1:] == [
        "snnkd: error: --compile-neurons needs a C++ compiler (g++ or clang++, or $CXX) for torch.compile; "
        "none was found on PATH"], r.stderr
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())


@needs_compiler
def test_compiled_rate_run_resumes_bitwise_and_refuses_eager(tmp_path):
    """Killed mid-epoch 2 and resumed with the same flag: the same weights and metrics as an
    uninterrupted compiled run; resuming without the flag is refused (its eligibilities differ
    in the last bit), leaving the state as it was."""
    data = ["--dataset", "digits", "--limit-train", "96", "--batch-size", "32", "--no-progress", "--seed", "2"]
    base = ["distill", "--student", "resnet_tiny", "--method", "none", "--trainer", "rate", "--T", "2",
            "--epochs", "2", "--precision", "bf16", *data]
    ref, run = tmp_path / "ref", tmp_path / "run"
    r = snnkd([*base, "--compile-neurons", "--out", str(ref)], timeout=400)
    assert r.returncode == 0, r.stderr
    killed = snnkd_killed("step", 5, [*base, "--compile-neurons", "--out", str(run)], timeout=400)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = run / "train_state.pt"
    before = state.read_bytes()
    eager = snnkd([*base, "--out", str(run)])
    assert eager.returncode == 2 and "compile_neurons: True then, False now" in eager.stderr, eager.stderr
    assert state.read_bytes() == before
    again = snnkd([*base, "--compile-neurons", "--out", str(run)], timeout=400)
    assert again.returncode == 0 and "after epoch 1" in again.stderr, again.stderr
    assert weights_differences(ref / "model.pt", run / "model.pt") == []
    assert metrics(run / "metrics.jsonl") == metrics(ref / "metrics.jsonl")
