"""``relation``: SuperSNN pairwise relational KD (our definition).

For a tapped representation (default: the pooled feature before the classifier, i.e.
the head's pooling of the last stage; or a stage pair ``"student_stage:teacher_stage"``,
whose maps may differ in size since only the B x B similarities are compared), flatten per sample and L2-normalise each row
(unifying the value scales of ANN and SNN), then compare the B x B similarity matrices::

    G_A = f_A f_A^T,   G_S = f_S f_S^T,   L_rel = ||G_S - G_A||_F^2 / B^2
    L = CE(z_S, y) + beta * L_rel  [+ alpha * tau^2 * KL(softmax(z_A/tau) || softmax(z_S/tau))]

The student side uses firing rates (mean over T).  The logit term is off by default
(``alpha = 0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnkd.errors import SnnkdError
from snnkd.methods.adapters import as_float, paired_stage
from snnkd.methods.base import Method, MethodOutput, freeze, register_method
from snnkd.methods.losses import kd_kl
from snnkd.models.base import StagedNet, StageOutput


def relation_loss(f_s: torch.Tensor, f_a: torch.Tensor) -> torch.Tensor:
    """``||G_S - G_A||_F^2 / B^2`` of the row-normalised, flattened features."""
    s = F.normalize(f_s.flatten(1), dim=1)
    a = F.normalize(f_a.flatten(1), dim=1)
    b = s.shape[0]
    return ((s @ s.t() - a @ a.t()) ** 2).sum() / (b * b)


def tapped(model: StagedNet, out: StageOutput, stage: str | None) -> torch.Tensor:
    """The representation: a stage's rate, or (None) the head's pooled last stage."""
    if stage is None:
        return model.head.flatten(model.head.pool(out.rates[model.stage_names[-1]]))
    return out.rates[stage]


@register_method
class RelationKD(Method):
    name = "relation"
    paper = "SuperSNN, ICLR 2024 submission (OpenReview)"
    params_help = {
        "stage": "stage whose representation is compared (default: the pooled feature before the classifier)",
        "beta": "weight of the sample-to-sample similarity matching term",
        "alpha": "weight of an added logit KD term (0: off)",
        "tau": "temperature of that logit KD term",
    }

    def __init__(self, student, teacher, stage: str | None = None, beta: float = 1.0, alpha: float = 0.0,
                 tau: float = 4.0) -> None:
        super().__init__(student, teacher)
        beta, alpha, tau = (as_float(self.name, k, v) for k, v in (("beta", beta), ("alpha", alpha), ("tau", tau)))
        if not beta >= 0 or not alpha >= 0 or not tau > 0:
            raise SnnkdError(f"relation KD needs beta >= 0, alpha >= 0, tau > 0 (got {beta}, {alpha}, {tau})")
        self.stage = self.t_stage = None
        if stage is not None:
            self.stage, self.t_stage, _, _ = paired_stage(student, teacher, stage, self.name)
        freeze(teacher)
        self.beta, self.alpha, self.tau = float(beta), float(alpha), float(tau)

    def forward(self, student, teacher, x, y) -> MethodOutput:
        t_out = self.teacher_stages(teacher, x)
        s_out = student.forward_stages(x)
        terms = {"ce": F.cross_entropy(s_out.logits, y),
                 "rel": self.beta * relation_loss(tapped(student, s_out, self.stage),
                                                  tapped(teacher, t_out, self.t_stage))}
        if self.alpha > 0:
            terms["kd"] = self.alpha * kd_kl(s_out.logits, t_out.logits, self.tau)
        return MethodOutput(s_out.logits, terms)
