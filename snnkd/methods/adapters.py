"""Adapter modules and stage checks shared by the feature-level methods.

Adapters live in the method (never in the student), so they train with the student
and are dropped from the exported model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.models.base import StagedNet


def connector(cin: int, cout: int) -> nn.Sequential:
    """A learnable ``1x1 conv + BN`` mapping ``cin`` to ``cout`` channels."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


def model_name(model: StagedNet) -> str:
    return getattr(model, "arch", type(model).__name__)


def stage_list(stages: list[str] | str | None, method: str) -> list[str | None]:
    """Normalise a ``stages`` hyperparameter of stage-pair specs (see :func:`split_pair`):
    None -> ``[None]`` (last:last); a string -> ``[it]``."""
    if stages is None:
        return [None]
    if isinstance(stages, str):
        stages = [stages]
    if not isinstance(stages, list) or not stages or not all(isinstance(s, str) for s in stages):
        raise SnnkdError(f"method {method!r}: stages must be a non-empty list of stage names, got {stages!r}")
    if len(set(stages)) != len(stages):
        raise SnnkdError(f"method {method!r}: stage listed twice in {stages}")
    return stages


def split_pair(spec: object, method: str) -> tuple[str | None, str | None]:
    """A stage-pair spec: ``"s:t"`` (student stage ``s``, teacher stage ``t``), ``"s"``
    (the same name in both) or None (the last stage of each)."""
    if spec is None:
        return None, None
    if not isinstance(spec, str) or not spec or spec.count(":") > 1:
        raise SnnkdError(f"method {method!r}: a stage is a name or 'student_stage:teacher_stage', got {spec!r}")
    s, _, t = spec.partition(":")
    return s, (t if _ else s)


def paired_stage(student: StagedNet, teacher: StagedNet, spec: object, method: str) -> tuple[str, str, dict, dict]:
    """Resolve a stage-pair spec (see :func:`split_pair`; None = last:last) to
    ``(student_stage, teacher_stage, student_info, teacher_info)``; refuses a stage either
    model lacks.  The two maps may differ in size: callers bring the teacher's map to the
    student's with :func:`match_spatial` (teacher and student may be of different families)."""
    s_name, t_name = split_pair(spec, method)
    s_name = s_name or student.stage_names[-1]
    t_name = t_name or teacher.stage_names[-1]
    infos = []
    for model, role, name in ((student, "student", s_name), (teacher, "teacher", t_name)):
        if name not in model.stage_names:
            raise SnnkdError(f"method {method!r} taps stage {name!r}, but the {role} ({model_name(model)}) "
                             f"has no such stage; its stages are {model.stage_names}")
        infos.append(model.stage_info(name))
    return s_name, t_name, infos[0], infos[1]


def match_spatial(t: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``t`` ``[B, C, H, W]`` resized to ``size`` (H, W): average pooling when it shrinks
    by a whole factor (the mean over each window, exact for rates), bilinear otherwise."""
    size = tuple(size)
    if tuple(t.shape[-2:]) == size:
        return t
    h, w = t.shape[-2:]
    if h >= size[0] and w >= size[1] and h % size[0] == 0 and w % size[1] == 0:
        return F.adaptive_avg_pool2d(t, size)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def as_float(method: str, key: str, value: object) -> float:
    """A numeric hyperparameter as float; one clear error otherwise.  Accepts numeric
    strings, since YAML reads ``1e-4`` (no dot) as a string."""
    if isinstance(value, bool):
        raise SnnkdError(f"method {method!r}: {key} must be a number, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SnnkdError(f"method {method!r}: {key} must be a number, got {value!r}") from None
