"""``trainer: rate``: rate-based backpropagation (Yu et al., NeurIPS 2024; methods.md section 7).

One training step is two passes, so the autograd graph (and its memory) does not grow
with ``T``:

1. **Spike pass**, ``T`` steps, no graph.  Every :class:`~snnkd.neurons.SpikingNeuron`
   runs a :class:`NeuronTrace` of this trainer (the neuron keeps none of it), which
   records the neuron's rate ``r = (1/T) sum_t s_t`` and eligibility
   ``e = (1/T) sum_t kappa_t g'(h_t - theta)`` (:func:`snnkd.neurons.record_steps`;
   ``kappa_t = 1 + beta rho_{t-1} kappa_{t-1}``, ``rho = 1`` for soft reset with detached
   reset, ``1 - s`` for hard reset with detached reset).  Every BatchNorm in training mode
   normalises with, and records, the batch statistics ``mu_s, sigma^2_s`` of its
   ``T*B`` inputs and updates its running statistics (once per step, as in BPTT).  The
   encoder's output is averaged over time: ``c_0 = (1/T) sum_t x_t``.
2. **Rate pass**, once, with a graph, on ``c_0`` with ``T`` treated as 1: the method
   runs as usual.  Each neuron returns ``r.detach() + c*e - (c*e).detach()`` (value ``r``,
   ``dr/dc = e``); each BatchNorm returns ``gamma (c - mu_s) / sqrt(sigma^2_s + eps) + beta``
   and back-propagates with the training-mode formula using the spike-pass statistics,
   ``dc = gamma/sigma_s (g - mean(g) - xhat mean(g xhat))`` (:class:`_RateBatchNorm`),
   i.e. the statistics are treated as those of the rate input (their values are the
   spike pass's; the means coincide exactly).  It does not touch running statistics.

Every stateless layer between neurons is affine in its input, so the rate pass
reproduces the spike pass's time-averaged values exactly: the loss value is unchanged.
The ``1/T`` of the gradient sits in ``e``: ``e = dr/dc`` is the derivative of the
*mean* rate, so for one layer with a constant input the rate gradient equals BPTT's
exactly (for every neuron setting), and at ``T = 1`` the two trainers coincide for
the whole network.  For ``T > 1`` deeper layers see time-varying spikes and the rate
gradient is an approximation (``tests/test_rate.py`` measures it).

Methods see the student run with ``T = 1``: stage features are ``[1, B, ...]`` rates
and per-time-step terms see one step.  The rate pass must feed the student the same
input as the spike pass (one recorded spike pass per step).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from snnkd.encoding import Encoder
from snnkd.errors import SnnkdError
from snnkd.methods.base import Method, MethodOutput
from snnkd.models.base import StagedNet
from snnkd.neurons import NeuronRunner, SpikingNeuron, rate_fn, record_steps, register_runner
from snnkd.train.trainers import bptt_step, current_precision, register_trainer

_BN = nn.modules.batchnorm._BatchNorm


class _RateBatchNorm(torch.autograd.Function):
    """``y = gamma (c - mu) * istd + beta`` with fixed ``mu, istd`` (one fused eval-mode
    kernel); backward by the training-mode BatchNorm formula with those statistics
    (saves only ``c``)."""

    @staticmethod
    def forward(ctx, c, weight, bias, mean, invstd, var, eps):  # type: ignore[override]
        ctx.save_for_backward(c, weight, mean, invstd)
        ctx.eps = eps
        return torch.batch_norm(c, weight, bias, mean, var, False, 0.0, eps, False)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        c, weight, mean, invstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        gc, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(), c, weight, None, None, mean, invstd, True, ctx.eps, mask)
        return gc, gw, gb, None, None, None, None


def _record_bn_forward(bn: _BN, x: torch.Tensor) -> torch.Tensor:
    """Training-mode BatchNorm that keeps its batch statistics in ``bn._rate_stats``."""
    if not (bn.training or not bn.track_running_stats) or x.dim() < 2:
        bn._rate_stats = None
        return type(bn).forward(bn, x)
    m = 0.0
    update = bn.training and bn.track_running_stats and bn.num_batches_tracked is not None
    if update:
        bn.num_batches_tracked.add_(1)
        m = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    # one fused pass: output, batch mean and 1/sqrt(var + eps); running stats updated in place
    # with the unbiased variance, exactly as nn.BatchNorm does in training mode
    y, mean, invstd = torch.native_batch_norm(x, bn.weight, bn.bias, bn.running_mean if update else None,
                                              bn.running_var if update else None, True, m, bn.eps)
    bn._rate_stats = (mean, invstd, invstd.pow(-2).sub_(bn.eps))  # var recovered for the fused kernel
    return y


def _rate_bn_forward(bn: _BN, c: torch.Tensor) -> torch.Tensor:
    stats = getattr(bn, "_rate_stats", None)
    if stats is None:  # eval-mode BN (running statistics): affine, the same in both passes
        return type(bn).forward(bn, c)
    mean, invstd, var = stats
    if c.shape[1] != mean.shape[0]:
        raise SnnkdError("a BatchNorm in rate mode saw a different input than in the spike pass")
    return _RateBatchNorm.apply(c, bn.weight, bn.bias, mean, invstd, var, bn.eps)


class _RecordEncoder(Encoder):
    """Wraps the model's encoder in the spike pass and keeps ``mean_t x_t``."""

    def __init__(self, inner: Encoder) -> None:
        super().__init__()
        self.inner = inner
        self.mean: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        z = self.inner(x, T)
        self.mean = x if getattr(self.inner, "name", "") == "direct" else z.mean(0)
        return z


class _RateInput(Encoder):
    """Rate-pass encoder: the spike pass's time-averaged input as one step."""

    def __init__(self, mean: torch.Tensor) -> None:
        super().__init__()
        self.mean = mean

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        if T != 1 or x.shape[0] != self.mean.shape[0]:
            raise SnnkdError("the rate pass must run the student on the spike pass's input")
        return self.mean.unsqueeze(0)


class NeuronTrace:
    """One neuron's per-step state in this trainer, and the runner that fills and uses it.

    ``mode = "record"``: the spike pass, ``T`` steps without a graph
    (:func:`~snnkd.neurons.record_steps`, the same spikes and membrane as the fused
    kernel), keeping the rate ``r`` and eligibility ``e`` ``[B, ...]``.
    ``mode = "rate"``: input ``c`` ``[B, ...]``, output :func:`~snnkd.neurons.rate_fn`
    of the recorded ``r``, ``e``."""

    def __init__(self, mode: str = "record") -> None:
        self.mode = mode
        self.r: torch.Tensor | None = None
        self.e: torch.Tensor | None = None

    def __call__(self, neuron: SpikingNeuron, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "rate":
            return self._rate(x)
        x_seq = neuron.unfold(x)
        spikes, self.r, self.e, neuron.v = record_steps(x_seq, neuron.cfg, neuron.initial_v(x_seq))
        return spikes.reshape(x.shape)

    def _rate(self, c: torch.Tensor) -> torch.Tensor:
        if self.r is None or self.e is None:
            raise SnnkdError("a neuron in rate mode has no recorded spike pass; run the model in record mode first")
        if self.r.shape != c.shape:
            raise SnnkdError(f"rate pass input {tuple(c.shape)} does not match the recorded spike pass "
                             f"{tuple(self.r.shape)}; the rate pass must see the spike pass's input")
        return rate_fn(c, self.r, self.e)


def _rate_runner(current: NeuronRunner | None) -> NeuronTrace:
    """``neuron.mode = "rate"``: the neuron's recorded trace, switched to the rate pass."""
    trace = current if isinstance(current, NeuronTrace) else NeuronTrace()
    trace.mode = "rate"
    return trace


register_runner("record", lambda current: NeuronTrace("record"))
register_runner("rate", _rate_runner)


class RateContext:
    """Switches a student's neurons, BatchNorms and encoder between record and rate mode;
    owns every neuron's :class:`NeuronTrace` for one training step."""

    def __init__(self, model: StagedNet) -> None:
        self.model = model
        self.neurons = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
        self.bns = [m for m in model.modules() if isinstance(m, _BN)]
        self.traces = [NeuronTrace() for _ in self.neurons]
        self._recorder: _RecordEncoder | None = None

    def _patch_bns(self, fn) -> None:
        for bn in self.bns:
            bn.forward = fn.__get__(bn)

    def _unpatch_bns(self) -> None:
        for bn in self.bns:
            bn.__dict__.pop("forward", None)

    def _set_mode(self, mode: str) -> None:
        """Install this context's traces in ``mode`` (``"spike"``: remove them)."""
        for n, trace in zip(self.neurons, self.traces):
            trace.mode = mode
            n.runner = None if mode == "spike" else trace

    @contextmanager
    def record(self) -> Iterator[None]:
        """Spike pass: run the model as usual (caller disables grad) and record."""
        enc = self.model.encoder
        self._recorder = _RecordEncoder(enc)
        self.model.encoder = self._recorder
        self._set_mode("record")
        self._patch_bns(_record_bn_forward)
        try:
            yield
        finally:
            self.model.encoder = enc
            self._set_mode("spike")
            self._unpatch_bns()

    @contextmanager
    def rate(self) -> Iterator[None]:
        """Rate pass: ``T = 1`` on the recorded mean input, neurons and BNs in rate mode."""
        if self._recorder is None or self._recorder.mean is None:
            raise SnnkdError("rate pass before a spike pass: call record() first")
        enc = self.model.encoder
        self.model.encoder = _RateInput(self._recorder.mean)
        self._set_mode("rate")
        self._patch_bns(_rate_bn_forward)
        try:
            with self.model.timesteps(1):
                yield
        finally:
            self.model.encoder = enc
            self._set_mode("spike")
            self._unpatch_bns()

    def clear(self) -> None:
        """Drop every recorded tensor."""
        self._recorder = None
        self.traces = [NeuronTrace() for _ in self.neurons]
        for bn in self.bns:
            bn.__dict__.pop("_rate_stats", None)


RATE_GRADS: tuple[str, ...] = ("reference", "bptt")


@register_trainer("rate")
def rate_step(student: StagedNet, teacher: StagedNet | None, method: Method, x: torch.Tensor,
              y: torch.Tensor, grad: str = "reference") -> MethodOutput:
    """Spike pass (no graph, records), rate pass through ``method``, backward.

    ``grad = "reference"`` (the default) back-propagates ``loss / T``, as the reference
    code does (its evaluator returns ``loss.detach() + loss/T - (loss/T).detach()``, on
    top of the ``1/T`` inside ``e``): gradients are BPTT's divided by ``T``, the scale its
    learning rates and weight decay are tuned for.  ``grad = "bptt"`` back-propagates the
    loss itself: BPTT-sized gradients, exactly BPTT's for one layer (see the module
    docstring).  The loss value the method reports is the same either way.

    A student without spiking neurons (an ANN) trains as with ``bptt``."""
    if grad not in RATE_GRADS:
        raise SnnkdError(f"rate trainer: grad must be one of {', '.join(RATE_GRADS)}, got {grad!r}")
    if not student.is_spiking:
        return bptt_step(student, teacher, method, x, y)
    ctx = RateContext(student)
    prec = current_precision()  # both passes in the run's precision; rates and eligibilities fp32
    try:
        with torch.no_grad(), ctx.record(), prec.forward():
            student(x)
        with ctx.rate(), prec.forward():
            out = method(student, teacher, x, y)
        prec.backward(out.loss / student.T if grad == "reference" else out.loss)
    finally:
        ctx.clear()
    return out
