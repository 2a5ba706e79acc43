"""The stateful multi-step neuron module (:class:`SpikingNeuron`) and the time-step count
it reads (:class:`TimeSteps`, owned by the model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from snnkd.neurons.config import NeuronConfig
from snnkd.neurons.fused import multi_step


class TimeSteps:
    """The number of time steps ``T``, one object shared by a model and all its neurons.

    Its only writer is :meth:`snnkd.models.base.StagedNet.set_T` (also behind
    ``with model.timesteps(T):``); a neuron built on its own owns one set at construction."""

    __slots__ = ("T",)

    def __init__(self, T: int = 1) -> None:
        if int(T) != T or T < 1:
            raise ValueError(f"T must be an integer >= 1, got {T}")
        self.T = int(T)


class NeuronRunner(Protocol):
    """A trainer's replacement for a neuron's time loop during one pass (see
    :mod:`snnkd.train.rate`); it keeps whatever state it records itself."""

    mode: str

    def __call__(self, neuron: SpikingNeuron, x: torch.Tensor) -> torch.Tensor: ...


RUNNERS: dict[str, Callable[[NeuronRunner | None], NeuronRunner]] = {}


def register_runner(mode: str, factory: Callable[[NeuronRunner | None], NeuronRunner]) -> None:
    """Name a runner so that ``neuron.mode = mode`` installs ``factory(current runner)``."""
    if mode == "spike" or mode in RUNNERS:
        raise ValueError(f"neuron mode {mode!r} is already defined")
    RUNNERS[mode] = factory


class SpikingNeuron(nn.Module):
    """Stateful multi-step IF/LIF neuron.

    ``forward`` takes ``[T*B, ...]`` (time folded into batch, ``T`` from the shared
    :class:`TimeSteps`) and returns spikes of the same shape, computed by the fused
    kernel (:func:`~snnkd.neurons.fused.multi_step`).  The membrane left after the last
    step is kept in ``self.v`` and continues on the next call until :func:`reset_net`.

    ``runner`` (None outside a trainer's pass) takes over the time loop; ``mode`` names it
    (``"spike"`` when there is none; ``"record"`` and ``"rate"`` are the rate trainer's).

    Mixed precision: the membrane and eligibility are fp32 whatever the precision of the
    layers around the neuron (:func:`~snnkd.neurons.equation.state_dtype`); a bf16/fp16
    current is promoted inside the charge, and the spikes come out in the current's dtype:
    0/1 are exact there, and the next convolution computes in it.  Neither side needs a
    separate cast of a ``[T*B, ...]`` tensor (measured on the ResNet-18 step, T = 4, bf16:
    BPTT 4184 -> 3880 ms with the output cast removed; ``benchmarks/train_step.py``).
    Reductions over spikes that report figures (firing rates, SynOps, stage rates) run in fp32.
    """

    def __init__(self, cfg: NeuronConfig | None = None, T: int = 1, **kwargs) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else NeuronConfig(**kwargs)
        self._steps = TimeSteps(T)
        self.v: torch.Tensor | None = None
        self.runner: NeuronRunner | None = None

    # --- time steps: read here, written by the model -------------------------
    @property
    def T(self) -> int:
        return self._steps.T

    @T.setter
    def T(self, value: int) -> None:
        raise AttributeError("a neuron's T follows its model: use model.set_T(T) or `with model.timesteps(T):`")

    def follow(self, steps: TimeSteps) -> None:
        """Read ``T`` from ``steps`` (the model's) from now on."""
        self._steps = steps

    # --- state -----------------------------------------------------------------
    def reset(self) -> None:
        self.v = None

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """``[T*B, ...] -> [T, B, ...]``."""
        T = self.T
        if x.shape[0] % T:
            raise ValueError(f"leading dim {x.shape[0]} is not a multiple of T={T}")
        return x.reshape(T, x.shape[0] // T, *x.shape[1:])

    def initial_v(self, x_seq: torch.Tensor) -> torch.Tensor | None:
        """The membrane to continue from (None: start at zero)."""
        return self.v if self.v is not None and self.v.shape == x_seq.shape[1:] else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.runner is not None:
            return self.runner(self, x).to(x.dtype)
        x_seq = self.unfold(x)
        spikes, self.v = multi_step(x_seq, self.cfg, self.initial_v(x_seq))
        return spikes.reshape(x.shape)

    # --- the runner, by name ---------------------------------------------------------
    @property
    def mode(self) -> str:
        return "spike" if self.runner is None else self.runner.mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode == "spike":
            self.runner = None
        elif mode in RUNNERS:
            self.runner = RUNNERS[mode](self.runner)
        else:
            raise ValueError(f"unknown neuron mode {mode!r}; known: spike, {', '.join(RUNNERS)}")

    @property
    def rate_r(self) -> torch.Tensor | None:
        """The rate the current runner recorded (None without one)."""
        return getattr(self.runner, "r", None)

    @property
    def rate_e(self) -> torch.Tensor | None:
        """The eligibility the current runner recorded (None without one)."""
        return getattr(self.runner, "e", None)

    def extra_repr(self) -> str:
        c = self.cfg
        leak = f", beta={c.beta:g}" if c.kind == "lif" else ""
        return f"{c.kind}, T={self.T}, threshold={c.threshold}{leak}, reset={c.reset}, surrogate={c.surrogate}({c.width})"


def reset_net(model: nn.Module) -> None:
    """Reset the state of every spiking neuron in ``model``."""
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.reset()
