"""The distillation-method contract and its registry.

A method is an ``nn.Module`` whose parameters are its adapters (connectors, mapping
modules, generators): they train with the student and are never part of the exported
model.  ``forward(student, teacher, x, y)`` returns the student's logits and a dict of
named loss terms *with their weights already applied*; the trainer sums and logs them.
The teacher is passed in, not stored, so it stays frozen in eval mode whatever mode
the method is put in.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.models.base import StagedNet, StageOutput
from snnkd.registry import Registry


class ValidationMetrics(Protocol):
    """Per-epoch validation figures accumulated batch by batch."""

    def add(self, x: torch.Tensor, y: torch.Tensor, out: StageOutput) -> None:
        """One validation batch: inputs, labels and the student's stage outputs on them."""

    def result(self) -> dict[str, float]:
        """The figures over every batch added (and the method back in its earlier mode)."""


@dataclass
class MethodOutput:
    logits: torch.Tensor
    terms: dict[str, torch.Tensor]

    @property
    def loss(self) -> torch.Tensor:
        return torch.stack(list(self.terms.values())).sum()


class Method(nn.Module):
    """Base class.  Subclasses set ``name`` and implement :meth:`forward`; the
    constructor's keyword arguments are the method's hyperparameters."""

    name: ClassVar[str] = ""
    #: capabilities read by the CLI and the workflow (never a list of names elsewhere)
    needs_teacher: ClassVar[bool] = True
    default_trainer: ClassVar[str] = "bptt"
    #: the paper it follows, one line (authors, venue, year), shown by `snnkd methods`
    paper: ClassVar[str] = ""
    #: meaning of each hyperparameter (a keyword argument of ``__init__``), for `snnkd methods`
    params_help: ClassVar[dict[str, str]] = {}

    def __init__(self, student: StagedNet, teacher: StagedNet | None) -> None:
        super().__init__()
        if self.needs_teacher and teacher is None:
            raise SnnkdError(f"method {self.name!r} needs a teacher checkpoint (--teacher)")

    def forward(self, student: StagedNet, teacher: StagedNet | None, x: torch.Tensor,
                y: torch.Tensor) -> MethodOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    @torch.no_grad()
    def teacher_stages(teacher: StagedNet, x: torch.Tensor, preacts: bool = False) -> StageOutput:
        """The frozen teacher's logits and stage features (no graph)."""
        return teacher.forward_stages(x, preacts=preacts)

    def validation_metrics(self, student: StagedNet, teacher: StagedNet | None) -> ValidationMetrics | None:
        """An accumulator of extra per-epoch validation figures the method wants logged,
        fed the student's outputs of the validation pass itself, so the student is not run
        twice (default: none)."""
        return None

    @torch.no_grad()
    def epoch_metrics(self, student: StagedNet, teacher: StagedNet | None, loader: Any,
                      device: torch.device) -> dict[str, float]:
        """:meth:`validation_metrics` over ``loader`` in a pass of their own (the training
        loop feeds them from its validation pass instead)."""
        acc = self.validation_metrics(student, teacher)
        if acc is None:
            return {}
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            acc.add(x, y, student.forward_stages(x))
        return acc.result()

    @staticmethod
    def require_stage(model: StagedNet, stage: str, role: str) -> dict:
        if stage not in model.stage_names:
            raise SnnkdError(f"the {role} ({getattr(model, 'arch', type(model).__name__)}) has no stage "
                             f"{stage!r}; its stages are {model.stage_names}")
        return model.stage_info(stage)


METHODS: Registry[type[Method]] = Registry("method", group="snnkd.methods", builtins=("snnkd.methods",))


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register a method under ``cls.name`` (empty or taken names are refused)."""
    return METHODS.register()(cls)


def list_methods() -> list[str]:
    return METHODS.names()


def method_params(name: str) -> dict[str, Any]:
    """The hyperparameters of a method and their defaults."""
    sig = inspect.signature(get_method(name).__init__)
    return {k: p.default for k, p in sig.parameters.items() if k not in ("self", "student", "teacher")}


def get_method(name: str) -> type[Method]:
    return METHODS[name]


def build_method(name: str, student: StagedNet, teacher: StagedNet | None, params: dict[str, Any]) -> Method:
    """Instantiate a method, rejecting hyperparameters it does not take."""
    allowed = method_params(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise SnnkdError(f"method {name!r} has no hyperparameter {', '.join(unknown)}; "
                         f"it takes {', '.join(allowed) or 'none'}")
    return get_method(name)(student, teacher, **params)


def freeze(teacher: StagedNet) -> StagedNet:
    """Eval mode and no gradients: the teacher never changes."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
