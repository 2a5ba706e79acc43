"""``blockwise``: ANN-guided hybrid block-wise replacement (Yang, Yu et al., CVPR 2025)
(our definition; no public code).

For each replaced stage ``k``: the SNN's firing-rate output of stage ``k`` goes through
a learnable mapping ``phi_k`` (1x1 conv + BN to the teacher's channels, then a ReLU when
``relu``, the default: the teacher stage after it was trained on post-ReLU, non-negative
inputs, which a signed BN output is not) and then through the frozen teacher's stages
``k+1..L`` and head -- the hybrid model ``M_k`` with logits ``z_Mk``.  Gradients flow
through the frozen teacher layers into ``phi_k`` and SNN stages ``1..k``::

    L = ce_weight * CE(z_S, y) + kd_weight * tau^2 * KL(a_A || s_S)
        + h(step) * sum_k [ce_weight * CE(z_Mk, y) + kd_weight * tau^2 * KL(a_A || s_Mk)]

with ``a = softmax(z_A/tau)``, ``s = softmax(./tau)``; defaults ``tau = 3``,
``ce_weight = 1``, ``kd_weight = 0.3``.  ``h = hybrid_scale`` (default ``1/K`` for ``K``
replaced stages, so the hybrid terms together weigh as much as the SNN's own instead of
``K`` times as much), ramped linearly from 0 over the first ``warmup_steps`` optimiser
steps (default 0: no warm-up).  Default replaced stages: every stage but the last.  A
stage is a name present in both nets or ``"student_stage:teacher_stage"``; the mapped map
is resized to the teacher stage's size when they differ.  Meant for the rate-based
trainer (``default_trainer = "rate"``).

Per epoch it logs the validation accuracy of the SNN (``bw_acc_snn``) and of every
``M_k`` (``bw_acc_M_<k>``), and the mean cosine similarity between ``phi_k`` of the SNN
rates and the teacher's stage-``k`` features (``bw_cos_<k>``): the paper's Figs. 2 and 3
(``snnkd plot-blockwise`` draws them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.methods.adapters import as_float, connector, match_spatial, paired_stage
from snnkd.methods.base import Method, MethodOutput, freeze, register_method
from snnkd.methods.losses import kd_kl


@register_method
class BlockwiseKD(Method):
    name = "blockwise"
    paper = "Yang, Yu et al., CVPR 2025"
    params_help = {
        "stages": "stages replaced, one hybrid model each (default: every stage but the last)",
        "tau": "temperature of the KD terms (scaled by tau^2)",
        "ce_weight": "weight of cross entropy, for the SNN and every hybrid",
        "kd_weight": "weight of the KL term, for the SNN and every hybrid",
        "relu": "a ReLU after each mapping phi_k",
        "hybrid_scale": "weight h of the hybrid models' losses (default: 1/number of stages)",
        "warmup_steps": "steps over which h ramps up from 0 (0: no ramp)",
    }
    default_trainer = "rate"

    def __init__(self, student, teacher, stages: list[str] | None = None, tau: float = 3.0,
                 ce_weight: float = 1.0, kd_weight: float = 0.3, relu: bool = True,
                 hybrid_scale: float | None = None, warmup_steps: int = 0) -> None:
        super().__init__(student, teacher)
        tau, ce_weight, kd_weight = (as_float(self.name, k, v) for k, v in
                                     (("tau", tau), ("ce_weight", ce_weight), ("kd_weight", kd_weight)))
        if not tau > 0 or ce_weight < 0 or kd_weight < 0:
            raise SnnkdError(f"blockwise KD needs tau > 0 and non-negative weights (got {tau}, {ce_weight}, {kd_weight})")
        if stages is None and student.stage_names != teacher.stage_names:
            raise SnnkdError(f"method 'blockwise' replaces teacher stages by student stages, so both need the same "
                             f"stage names (or explicit 'student_stage:teacher_stage' pairs); student has "
                             f"{student.stage_names}, teacher has {teacher.stage_names}")
        if stages is None:
            stages = student.stage_names[:-1]
        if isinstance(stages, str):
            stages = [stages]
        if not isinstance(stages, list) or len(set(stages)) != len(stages):
            raise SnnkdError(f"method 'blockwise': stages must be a list of distinct stage names, got {stages!r}")
        if not isinstance(relu, bool):
            raise SnnkdError(f"method 'blockwise': relu must be true or false, got {relu!r}")
        steps = as_float(self.name, "warmup_steps", warmup_steps)
        if not (steps >= 0 and steps == int(steps)):
            raise SnnkdError(f"method 'blockwise': warmup_steps must be a whole number >= 0, got {warmup_steps!r}")
        warmup_steps = int(steps)
        if hybrid_scale is None:
            scale = 1.0 / max(len(stages), 1)
        else:
            scale = as_float(self.name, "hybrid_scale", hybrid_scale)
        if not scale >= 0:
            raise SnnkdError(f"method 'blockwise': hybrid_scale must be >= 0, got {hybrid_scale!r}")
        freeze(teacher)
        self.stages: list[str] = []
        self.t_stage: dict[str, str] = {}
        self.maps = nn.ModuleDict()
        for spec in stages:
            st, t_st, s_info, t_info = paired_stage(student, teacher, spec, self.name)
            if st in self.maps:
                raise SnnkdError(f"method 'blockwise': student stage {st!r} replaced twice")
            self.stages.append(st)
            self.t_stage[st] = t_st
            self.maps[st] = connector(s_info["channels"], t_info["channels"])
            if relu:
                self.maps[st].append(nn.ReLU())
        self.tau, self.ce_weight, self.kd_weight = float(tau), float(ce_weight), float(kd_weight)
        self.hybrid_scale, self.warmup_steps = scale, warmup_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # saved with the method: resumes exactly

    def hybrid_weight(self) -> float:
        """``h(step)``: ``hybrid_scale``, ramped linearly over the first ``warmup_steps`` steps."""
        if self.warmup_steps == 0:
            return self.hybrid_scale
        return self.hybrid_scale * min(1.0, (int(self.steps) + 1) / (self.warmup_steps + 1))

    def mapped(self, teacher, st: str, rate: torch.Tensor) -> torch.Tensor:
        """``phi_k(rate_k)``, at the spatial size of the teacher stage it replaces."""
        t_info = teacher.stage_info(self.t_stage[st])
        side = getattr(teacher, "img_size", 0) // t_info["reduction"]
        m = self.maps[st](rate)
        return match_spatial(m, (side, side)) if side else m

    def hybrid_logits(self, teacher, rates: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``z_Mk = teacher_{k+1..L}(phi_k(rate_k))`` for every replaced stage."""
        return {st: teacher.forward_from(self.t_stage[st], self.mapped(teacher, st, rates[st])) for st in self.stages}

    def forward(self, student, teacher, x, y) -> MethodOutput:
        z_a = self.teacher_stages(teacher, x).logits
        s_out = student.forward_stages(x)
        z_s = s_out.logits
        terms = {"ce": self.ce_weight * F.cross_entropy(z_s, y),
                 "kd": self.kd_weight * kd_kl(z_s, z_a, self.tau)}
        h = self.hybrid_weight()
        for st, z_m in self.hybrid_logits(teacher, s_out.rates).items():
            terms[f"ce_M_{st}"] = h * self.ce_weight * F.cross_entropy(z_m, y)
            terms[f"kd_M_{st}"] = h * self.kd_weight * kd_kl(z_m, z_a, self.tau)
        if self.training and torch.is_grad_enabled():
            self.steps += 1
        return MethodOutput(z_s, terms)

    def validation_metrics(self, student, teacher) -> _HybridMetrics:
        """Validation accuracy (%) of the SNN and of each ``M_k``; mean cosine similarity
        between ``phi_k(rate_k)`` and the teacher's stage-``k`` features."""
        return _HybridMetrics(self, teacher)


class _HybridMetrics:
    """:meth:`BlockwiseKD.validation_metrics`: the method in eval mode while batches are added."""

    def __init__(self, method: BlockwiseKD, teacher) -> None:
        self.method, self.teacher, self.was_training = method, teacher, method.training
        method.eval()
        self.correct = {"snn": 0, **{st: 0 for st in method.stages}}
        self.cos = {st: 0.0 for st in method.stages}
        self.total = 0

    @torch.no_grad()
    def add(self, x: torch.Tensor, y: torch.Tensor, s_out) -> None:
        m, teacher = self.method, self.teacher
        t_out = teacher.forward_stages(x)
        self.correct["snn"] += (s_out.logits.argmax(1) == y).sum().item()
        for st in m.stages:
            t_st = m.t_stage[st]
            mapped = m.mapped(teacher, st, s_out.rates[st])
            self.correct[st] += (teacher.forward_from(t_st, mapped).argmax(1) == y).sum().item()
            self.cos[st] += F.cosine_similarity(mapped.flatten(1), t_out.features[t_st].flatten(1), dim=1).sum().item()
        self.total += len(y)

    def result(self) -> dict[str, float]:
        self.method.train(self.was_training)
        n = max(self.total, 1)
        out = {"bw_acc_snn": 100.0 * self.correct["snn"] / n}
        out.update({f"bw_acc_M_{st}": 100.0 * self.correct[st] / n for st in self.method.stages})
        out.update({f"bw_cos_{st}": self.cos[st] / n for st in self.method.stages})
        return out
