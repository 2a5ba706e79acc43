"""ONNX export of the ANN teacher and of the SNN unrolled over ``T``, checked with onnxruntime.

The exported function is the model's whole forward pass:

* ANN: ``x [B, C, H, W] -> logits [B, K]``;
* SNN, direct encoding: ``x [B, C, H, W] -> logits = (1/T) sum_t y_t``, the ``T`` steps
  unrolled into one static graph (``h_t = beta v + x_t``, ``s_t = [h_t > theta]``, reset);
* SNN, stochastic encoding: the input is the encoded sequence ``x_seq [T, B, C, H, W]``
  (ONNX random ops cannot be compared), same output.

The graph is that of the BatchNorm-folded model (:func:`snnkd.export.deploy.deploy_copy`) with
its neurons written in plain tensor ops (:class:`ExportNeuron`, independent of the
training kernels), and
the tolerance applies against that same folded model in PyTorch; the error against the
unfolded trained model is reported beside it (for an SNN, folding's float rounding can
flip a spike that sits exactly at threshold, which moves a logit by one weight).
The batch axis is dynamic.  Written with the TorchScript exporter (``dynamo=False``;
the dynamo exporter needs onnxscript) into memory, checked with ``onnx.checker``, then
written to a temporary path and renamed into place.  Agreement: for an ANN,
``max |y_ort - y_torch|`` over the test inputs must be below ``atol``.  For an SNN the same holds per sample for at
least ``SNN_MIN_AGREEMENT`` of the samples: onnxruntime accumulates convolutions in another
order than PyTorch, so a membrane within float rounding of the threshold can fire in one
runtime and not the other, which moves that sample's logits by a whole weight (seen on a
digits resnet_tiny: 0.0995 on one sample of 100).  The maximum error and the number of
samples that differ are always reported, and the predicted classes are compared.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from snnkd import io
from snnkd.errors import SnnkdError
from snnkd.export.deploy import deploy_copy
from snnkd.export.loihi.run import signals_raise
from snnkd.models.base import StagedNet
from snnkd.neurons import NeuronConfig, SpikingNeuron, reset_net, run_steps

SNN_MIN_AGREEMENT = 0.99  # fraction of samples whose SNN logits must match within atol

OPSET = 17


class ExportNeuron(nn.Module):
    """The IF/LIF neuron for the exporter: :func:`snnkd.neurons.run_steps` without the
    surrogate (plain tensor ops, the same :func:`~snnkd.neurons.neuron_step` the training
    kernels run), time folded in the batch and ``T`` unrolled from a zero membrane."""

    def __init__(self, cfg: NeuronConfig, T: int) -> None:
        super().__init__()
        self.cfg, self.T = cfg, T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.reshape(self.T, x.shape[0] // self.T, *x.shape[1:])
        return run_steps(xs, self.cfg, surrogate=False)[0].reshape(x.shape)


def exportable(model: StagedNet) -> StagedNet:
    """A BatchNorm-folded copy whose neurons are :class:`ExportNeuron`."""
    m = deploy_copy(model)
    for parent in list(m.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SpikingNeuron):
                setattr(parent, name, ExportNeuron(child.cfg, child.T))
    return m


class Unrolled(nn.Module):
    """``model`` as one function of its (encoded, if stochastic) input, ``T`` unrolled."""

    def __init__(self, model: StagedNet, sequence_input: bool | None = None) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.T = model.T
        self.sequence_input = (model.is_spiking and getattr(model.encoder, "name", "direct") != "direct"
                               if sequence_input is None else sequence_input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        reset_net(m)
        if self.sequence_input:
            z = x.flatten(0, 1)
        else:
            z = x.unsqueeze(0).expand(self.T, *x.shape).flatten(0, 1)
        z = m.stem(z)
        for stage in m.stages.values():
            z = stage(z)
        y = m.head(z)
        return y.reshape(self.T, y.shape[0] // self.T, y.shape[-1]).mean(0)


def model_input(model: StagedNet, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """What the exported graph takes for images ``x``: ``x`` or its encoded sequence."""
    if model.is_spiking and getattr(model.encoder, "name", "direct") != "direct":
        torch.manual_seed(seed)
        return model.encoder(x, model.T)
    return x


def write_onnx(model: StagedNet, path: str | Path, example: torch.Tensor) -> None:
    """Export ``Unrolled(model)`` to ``path`` (atomic), dynamic batch axis, checked by onnx;
    ``example`` is ``[B, ...]`` (image input) or ``[T, B, ...]`` (encoded sequence)."""
    net = Unrolled(model, sequence_input=example.dim() == 5)
    batch_axis = 1 if net.sequence_input else 0
    buf = BytesIO()  # built and checked in memory; only a checked model reaches the disk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (example,), buf, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {batch_axis: "batch"}, "logits": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
            onnx.checker.check_model(onnx.load_model_from_string(buf.getvalue()))
        except (RuntimeError, onnx.checker.ValidationError) as e:
            raise SnnkdError(f"ONNX export failed: {str(e).splitlines()[0]}") from None
    with signals_raise():  # a SIGTERM while writing still removes the temporary file
        io.write_bytes(path, buf.getvalue())  # atomic; a full disk is one error line, no temp file left


def onnx_session(path: str | Path) -> Callable[[torch.Tensor], np.ndarray]:
    """onnxruntime (CPU) on ``path`` as a function of the input; one clear error for a file
    it cannot load."""
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise SnnkdError(f"{path} is not a loadable ONNX model: {str(e).splitlines()[0]}") from None
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x.numpy()})[0]


def run_onnx(path: str | Path, x: torch.Tensor) -> np.ndarray:
    """onnxruntime (CPU) on ``x``; one clear error for a file it cannot load."""
    return onnx_session(path)(x)


def _batched(fn: Callable[[torch.Tensor], torch.Tensor | np.ndarray], inp: torch.Tensor, batch: int) -> np.ndarray:
    """``fn`` over the sample axis of ``inp`` (axis 1 of an encoded sequence ``[T, B, ...]``,
    else 0) ``batch`` samples at a time; the outputs ``[B, K]`` concatenated."""
    axis = 1 if inp.dim() == 5 else 0
    outs = [fn(part.contiguous()) for part in inp.split(batch, dim=axis)]
    return np.concatenate([o.numpy() if isinstance(o, torch.Tensor) else o for o in outs])


@torch.no_grad()
def export_onnx(model: StagedNet, meta: dict, out: str | Path, x: torch.Tensor, y: torch.Tensor,
                atol: float = 1e-4, seed: int = 0, batch: int = 200) -> dict:
    """Export and verify against PyTorch, ``batch`` samples at a time (memory bounded for any
    number of test samples); ``within_tolerance`` applies the rule in the module docstring
    (ANN: max error <= atol; SNN: >= 99% of samples within atol)."""
    inp = model_input(model, x, seed)
    folded = exportable(model)
    write_onnx(folded, out, inp[:, :2] if inp.dim() == 5 else inp[:2])
    ref = _batched(Unrolled(folded, sequence_input=inp.dim() == 5), inp, batch)
    trained = _batched(Unrolled(model), inp, batch)
    got = _batched(onnx_session(out), inp, batch)
    err = float(np.abs(got - ref).max())
    scale = float(np.abs(ref).max())
    per_sample = np.abs(got - ref).reshape(len(got), -1).max(1) <= atol
    ok = bool(per_sample.mean() >= SNN_MIN_AGREEMENT) if model.is_spiking else err <= atol
    report = {
        "format": "onnx", "out": str(out), "opset": OPSET, "T": int(model.T),
        "input": "encoded sequence [T, B, C, H, W]" if inp.dim() == 5 else "image [B, C, H, W]",
        "test_samples": int(len(x)), "max_abs_error": err, "max_abs_logit": scale, "tolerance": atol,
        "samples_within_tolerance": float(per_sample.mean()),
        "samples_differing": int((~per_sample).sum()),
        "within_tolerance": ok,
        "max_abs_error_vs_unfolded": float(np.abs(got - trained).max()),
        "prediction_agreement_vs_unfolded": float((got.argmax(1) == trained.argmax(1)).mean()),
        "prediction_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
        "accuracy_onnx": float((got.argmax(1) == y.numpy()).mean()),
        "accuracy_torch": float((ref.argmax(1) == y.numpy()).mean()),
        "file_bytes": Path(out).stat().st_size,
    }
    return report
