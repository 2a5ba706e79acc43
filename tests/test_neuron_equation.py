"""One neuron equation (issue 13): the fused BPTT kernel, the rate trainer's recorder and
the ONNX export neuron all give the spikes and membranes of the one step function;
``T`` is the model's, written only through ``set_T`` / ``model.timesteps``; the rate
trainer keeps its per-neuron state itself."""

from __future__ import annotations

import copy
import re
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from source_tree import source_files
from torch import nn

from snnkd.export.onnx_export import OPSET, ExportNeuron
from snnkd.models import create_model
from snnkd.neurons import (
    NeuronConfig,
    SpikingNeuron,
    multi_step,
    neuron_step,
    record_steps,
)
from snnkd.train.rate import NeuronTrace, RateContext

REPO = Path(__file__).resolve().parents[1]

CFGS = {
    "if-hard": NeuronConfig(kind="if", threshold=0.8, reset="hard"),
    "if-soft": NeuronConfig(kind="if", threshold=0.8, reset="soft"),
    "lif-hard": NeuronConfig(kind="lif", decay=0.7, threshold=0.9, reset="hard"),
    "lif-soft": NeuronConfig(kind="lif", tau=3.0, threshold=0.9, reset="soft"),
}
T, B = 6, 5


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, 3, 4, generator=g) + 0.4, torch.randn(B, 3, 4, generator=g) * 0.5


def _equation(x: torch.Tensor, v0: torch.Tensor, cfg: NeuronConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The step function itself, one call per step: spikes and membranes ``[T, ...]``."""
    v, spikes, membranes = v0, [], []
    for t in range(x.shape[0]):
        s, v, _ = neuron_step(x[t], v, cfg, surrogate=False)
        spikes.append(s)
        membranes.append(v)
    return torch.stack(spikes), torch.stack(membranes)


def _equation_by_hand(x: torch.Tensor, v0: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
    """The equation written out (``H = beta V + X``, strict threshold, hard/soft reset)."""
    v, out = v0, []
    for t in range(x.shape[0]):
        h = cfg.beta * v + x[t] if cfg.kind == "lif" else v + x[t]
        s = (h > cfg.threshold).float()
        v = h * (1 - s) if cfg.reset == "hard" else h - cfg.threshold * s
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("name", list(CFGS))
def test_step_function_is_the_documented_equation(name):
    x, v0 = _inputs(0)
    spikes, _ = _equation(x, v0, CFGS[name])
    assert 0 < spikes.mean() < 1
    assert torch.equal(spikes, _equation_by_hand(x, v0, CFGS[name]))


@pytest.mark.parametrize("name", list(CFGS))
def test_bptt_kernel_gives_the_step_functions_spikes_and_membranes(name):
    cfg = CFGS[name]
    x, v0 = _inputs(1)
    spikes, membranes = _equation(x, v0, cfg)
    s, v = multi_step(x.clone().requires_grad_(), cfg, v0)
    assert torch.equal(s, spikes) and torch.equal(v, membranes[-1])
    for t in range(T):  # every intermediate membrane: the kernel run over the first t + 1 steps
        assert torch.equal(multi_step(x[: t + 1], cfg, v0)[1], membranes[t])
    mod = SpikingNeuron(cfg, T=T)  # the module (fused kernel, from zero)
    zero_s, zero_v = _equation(x, torch.zeros_like(v0), cfg)
    assert torch.equal(mod(x.flatten(0, 1)), zero_s.flatten(0, 1)) and torch.equal(mod.v, zero_v[-1])


@pytest.mark.parametrize("name", list(CFGS))
def test_rate_recorder_gives_the_step_functions_spikes_and_membranes(name):
    cfg = CFGS[name]
    x, v0 = _inputs(2)
    spikes, membranes = _equation(x, v0, cfg)
    s, r, _, v = record_steps(x, cfg, v0)
    assert torch.equal(s, spikes) and torch.equal(v, membranes[-1])
    assert torch.equal(r, spikes.mean(0))
    for t in range(T):
        assert torch.equal(record_steps(x[: t + 1], cfg, v0)[3], membranes[t])
    # the rate trainer's runner on a neuron: the same spikes, its rate kept by the trace
    neuron, trace = SpikingNeuron(cfg, T=T), NeuronTrace("record")
    neuron.runner = trace
    zero_s, zero_v = _equation(x, torch.zeros_like(v0), cfg)
    assert torch.equal(neuron(x.flatten(0, 1)), zero_s.flatten(0, 1)) and torch.equal(neuron.v, zero_v[-1])
    assert torch.equal(trace.r, zero_s.mean(0))


@pytest.mark.parametrize("name", list(CFGS))
def test_onnx_export_neuron_gives_the_step_functions_spikes(name):
    import onnxruntime as ort

    cfg = CFGS[name]
    x, _ = _inputs(3)
    zero = torch.zeros_like(x[0])
    spikes, _ = _equation(x, zero, cfg)
    folded = x.flatten(0, 1)
    neuron = ExportNeuron(cfg, T)
    assert torch.equal(neuron(folded), spikes.flatten(0, 1))
    for t in range(T):  # the membrane after step t decides step t + 1: compare every prefix
        assert torch.equal(ExportNeuron(cfg, t + 1)(x[: t + 1].flatten(0, 1)), spikes[: t + 1].flatten(0, 1))
    buf = BytesIO()
    torch.onnx.export(neuron, (folded,), buf, input_names=["x"], output_names=["s"], opset_version=OPSET,
                      dynamo=False)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": folded.numpy()})[0]
    assert np.array_equal(got, spikes.flatten(0, 1).numpy())


def _snn(T: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return create_model("vgg_tiny", NeuronConfig(), 10, 1, 8, T)


def _neuron_Ts(model: nn.Module) -> set[int]:
    return {m.T for m in model.modules() if isinstance(m, SpikingNeuron)}


def test_T_is_the_models_and_changes_only_through_set_T_or_timesteps():
    model = _snn(3)
    assert model.T == 3 and _neuron_Ts(model) == {3}
    x = torch.rand(2, 1, 8, 8)
    with model.timesteps(5):
        assert model.T == 5 and _neuron_Ts(model) == {5}
        with torch.no_grad():
            assert model(x).shape == (2, 10)
    assert model.T == 3 and _neuron_Ts(model) == {3}
    with pytest.raises(RuntimeError, match="inside"), model.timesteps(1):
        raise RuntimeError("inside")
    assert model.T == 3 and _neuron_Ts(model) == {3}  # restored after an exception too
    neuron = next(m for m in model.modules() if isinstance(m, SpikingNeuron))
    with pytest.raises(AttributeError, match="set_T"):
        neuron.T = 7
    twin = copy.deepcopy(model).set_T(2)  # a copy's neurons follow the copy, not the original
    assert _neuron_Ts(twin) == {2} and _neuron_Ts(model) == {3}
    with pytest.raises(ValueError):
        model.set_T(0)


def test_no_source_file_writes_T_outside_the_model():
    """``X.T = ...`` (for ``X`` other than ``self``) or ``._T = ...`` anywhere in the library."""
    write = re.compile(r"(?<![\w.])(?!self\.)[\w.]+\.(?:T|_T)\s*=(?!=)|\._T\s*=(?!=)")
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}"
            for p in source_files()
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if write.search(line.split("#")[0])]
    assert hits == []
    assert write.search("        mod.T = 1") and write.search("model._T = T") and not write.search("self.T = T")


def test_rate_trainer_keeps_its_per_neuron_state():
    model = _snn(4).train()
    neurons = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
    ctx = RateContext(model)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad(), ctx.record():
        model(x)
        for n in neurons:  # the neuron holds its membrane and nothing of the trainer's
            assert [k for k, v in vars(n).items() if isinstance(v, torch.Tensor)] == ["v"]
    assert all(t.r is not None and t.e is not None for t in ctx.traces)
    assert all(n.runner is None and n.mode == "spike" for n in neurons)
    with ctx.rate():
        assert model.T == 1 and all(n.mode == "rate" for n in neurons)
        model(x)
    assert model.T == 4
    ctx.clear()
    assert all(t.r is None for t in ctx.traces)
