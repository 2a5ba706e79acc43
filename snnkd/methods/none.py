"""``none``: the direct-training baseline, ``L = CE(z_S, y)``."""

from __future__ import annotations

import torch.nn.functional as F

from snnkd.methods.base import Method, MethodOutput, register_method


@register_method
class Direct(Method):
    name = "none"
    paper = "baseline: direct training with cross entropy (no teacher)"
    needs_teacher = False

    def __init__(self, student, teacher) -> None:
        super().__init__(student, teacher)

    def forward(self, student, teacher, x, y) -> MethodOutput:
        logits = student(x)
        return MethodOutput(logits, {"ce": F.cross_entropy(logits, y)})
