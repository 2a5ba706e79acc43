"""How a training step turns a method's loss into gradients.

* ``bptt``: backpropagation through time over the unrolled ``T`` steps (surrogate
  gradients through every step; memory grows with ``T``).

Other trainers (``rate``) register through :func:`register_trainer`; plugins through the
``snnkd.trainers`` entry-point group.  Capabilities are :class:`Trainer` attributes.

Precision (``--precision``): a step runs its forward passes inside
:meth:`Precision.forward` and its backward through :meth:`Precision.backward` of the
precision the training loop made current (:func:`use_precision`; fp32 when none is).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.methods.base import Method, MethodOutput
from snnkd.models.base import StagedNet
from snnkd.registry import Registry

StepFn = Callable[[StagedNet, "StagedNet | None", Method, torch.Tensor, torch.Tensor], MethodOutput]

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_LOW: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _output_to_fp32(module: nn.Module, args: Any, output: Any) -> Any:
    """Global forward hook: a linear layer's low-precision output (logits, adapters) -> fp32."""
    if isinstance(module, nn.Linear) and isinstance(output, torch.Tensor) and output.dtype in _LOW.values():
        return output.float()
    return None


@contextmanager
def _low_precision(device_type: str, dtype: torch.dtype) -> Iterator[None]:
    """Autocast to ``dtype`` with every linear layer's output cast back to fp32."""
    handle = nn.modules.module.register_module_forward_hook(_output_to_fp32)
    try:
        with torch.autocast(device_type, dtype=dtype):
            yield
    finally:
        handle.remove()


class Precision:
    """Mixed precision of a training or evaluation run: ``fp32``, ``bf16`` or ``fp16``.

    Under ``bf16``/``fp16`` the convolutions and linear layers (of the student, the teacher
    and the method's adapters) compute in the low precision under ``torch.autocast`` for the
    device type the run uses (never a literal). A convolution's output stays low precision
    into the BatchNorm after it (which accumulates its statistics in fp32 and keeps fp32
    parameters and running statistics); the neurons promote their input current to fp32
    inside the charge (:func:`snnkd.neurons.state_dtype`) and hand 0/1 spikes on in the
    current's dtype: membrane potentials and eligibilities are fp32 state, so a spike is
    decided by comparing an fp32 potential with the threshold, and bf16's 8-bit mantissa (a
    step of 2^-7 near 1.0) neither moves the threshold nor loses small currents added to a
    large membrane over ``T`` steps. A linear layer's output (the logits, adapter outputs)
    is cast back to fp32 at once, so the loss and its terms are computed in fp32. Weights,
    gradients and optimizer state stay fp32. Casting every convolution's output to fp32 too
    (BatchNorm in fp32) made the bf16 ResNet-18 step 8 % slower (ANN 1.50x vs 1.62x, SNN T=4
    1.67x vs 1.82x the fp32 step, batch 16, 1 thread, this CPU), so only the linear outputs
    are cast.

    ``fp16`` needs CUDA and scales the loss (``torch.amp.GradScaler``): its 5-bit exponent
    underflows small gradients.  bf16 has fp32's exponent range and needs no scaler.
    """

    def __init__(self, name: str = "fp32", device: torch.device | str = "cpu", allow_cpu_fp16: bool = False) -> None:
        check_precision(name, device, allow_cpu_fp16)
        self.name = name
        self.device_type = torch.device(device).type
        self.dtype = _LOW.get(name, torch.float32)
        self.scaler = torch.amp.GradScaler(self.device_type) if name == "fp16" else None

    def forward(self) -> AbstractContextManager:
        """The context the forward passes run in (no-op for fp32)."""
        return nullcontext() if self.name == "fp32" else _low_precision(self.device_type, self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, of the scaled loss under fp16."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, opt: torch.optim.Optimizer) -> None:
        """``opt.step()``; under fp16 unscaled, skipped on non-finite gradients, scale updated."""
        if self.scaler is None:
            opt.step()
        else:
            self.scaler.step(opt)
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def check_precision(name: str, device: torch.device | str, allow_cpu_fp16: bool = False) -> None:
    """Refuse an unknown precision, and fp16 off CUDA (``allow_cpu_fp16``: tests only)."""
    if name not in PRECISIONS:
        raise SnnkdError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "fp16" and torch.device(device).type != "cuda" and not allow_cpu_fp16:
        raise SnnkdError(f"precision fp16 needs a CUDA device (this run uses {torch.device(device).type}); "
                         "use bf16 on the CPU")


_CURRENT: ContextVar[Precision | None] = ContextVar("snnkd_precision", default=None)


def current_precision() -> Precision:
    """The precision made current by :func:`use_precision` (fp32 on the CPU when none is)."""
    p = _CURRENT.get()
    return p if p is not None else Precision()


@contextmanager
def use_precision(p: Precision) -> Iterator[Precision]:
    """Make ``p`` the precision of the training steps run inside."""
    token = _CURRENT.set(p)
    try:
        yield p
    finally:
        _CURRENT.reset(token)


class Trainer:
    """A registered trainer: its step function plus its capabilities (attributes, never name checks).

    ``ddp_safe``: the step is one forward and one backward of the method, so under torchrun
    it can run inside ``DistributedDataParallel`` as it is; otherwise the step runs
    unchanged and :mod:`snnkd.train.distributed` averages its gradients afterwards."""

    def __init__(self, name: str, step: StepFn, ddp_safe: bool = False) -> None:
        self.name, self.step, self.ddp_safe = name, step, ddp_safe
        self.__signature__ = inspect.signature(step)  # the step's options (``grad`` ...)
        self.__doc__ = step.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> MethodOutput:
        return self.step(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Trainer({self.name!r}, ddp_safe={self.ddp_safe})"


TRAINERS: Registry[Trainer] = Registry("trainer", group="snnkd.trainers",
                                       builtins=("snnkd.train.trainers", "snnkd.train.rate"))


def register_trainer(name: str, ddp_safe: bool = False) -> Callable[[StepFn], StepFn]:
    """Decorator: register a step function as trainer ``name`` (a second ``name`` is refused)."""
    def deco(fn: StepFn) -> StepFn:
        TRAINERS.add(name, Trainer(name, fn, ddp_safe))
        return fn
    return deco


def list_trainers() -> list[str]:
    return TRAINERS.names()


def get_trainer(name: str) -> Trainer:
    return TRAINERS[name]


@register_trainer("bptt", ddp_safe=True)
def bptt_step(student: StagedNet, teacher: StagedNet | None, method: Method, x: torch.Tensor,
              y: torch.Tensor) -> MethodOutput:
    """Forward over all ``T`` steps with the graph kept, then ``loss.backward()``."""
    prec = current_precision()
    with prec.forward():
        out = method(student, teacher, x, y)
    prec.backward(out.loss)
    return out
