"""``blurred``: BKDSNN, blurred knowledge distillation (Xu et al., ECCV 2024).

The student's time-averaged feature at a tapped stage pair (``stage``: a name,
``"student_stage:teacher_stage"``, default the last of each; the teacher map is resized to
the student's when they differ), aligned by
a 1x1 conv when its channel count differs from the teacher's, is multiplied by a
random channel mask ``M`` (each channel of each sample kept with probability
``keep``), passed through a generator ``G = conv3x3 -> ReLU -> conv3x3`` and regressed
onto the teacher's feature ``F_A`` (post-ReLU stage output)::

    L_bkd  = alpha * sum (G(F_S * M) - F_A)^2 / B
    L_wsld = wsld_weight * tau^2 * mean_b(w_b * soft_CE_b),  w_b = 1 - exp(-CE_S,b / CE_A,b)
    L = CE(z_S, y) + L_bkd + L_wsld

With ``clip_teacher`` the target is ``F_A / max(F_A) * max(F_S)`` (student side detached).
Defaults: ``keep = 0.85``, ``tau = 2`` (theirs); ``alpha = 2e-3`` (their CIFAR value).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.methods.adapters import as_float, match_spatial, paired_stage
from snnkd.methods.base import Method, MethodOutput, freeze, register_method
from snnkd.methods.losses import wsld


def channel_mask(b: int, c: int, keep: float, like: torch.Tensor) -> torch.Tensor:
    """``[B, C, 1, 1]`` of 0/1, each entry 1 with probability ``keep``."""
    return (torch.rand(b, c, 1, 1, device=like.device) < keep).to(like.dtype)


def generator(c: int) -> nn.Sequential:
    """``conv3x3 -> ReLU -> conv3x3`` on ``c`` channels."""
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))


@register_method
class BlurredKD(Method):
    name = "blurred"
    paper = "Xu et al., ECCV 2024 (BKDSNN)"
    params_help = {
        "stage": "stage whose rate feature is blurred and regressed (default: the last stage)",
        "alpha": "weight of the blurred feature regression",
        "keep": "probability that the random mask keeps a channel",
        "tau": "temperature of the WSLD logit term",
        "wsld_weight": "weight of the per-sample weighted soft-label (WSLD) term",
        "clip_teacher": "rescale the teacher map to the student's range",
    }

    def __init__(self, student, teacher, stage: str | None = None, alpha: float = 2e-3, keep: float = 0.85,
                 tau: float = 2.0, wsld_weight: float = 1.0, clip_teacher: bool = False) -> None:
        super().__init__(student, teacher)
        alpha, keep, tau, wsld_weight = (as_float(self.name, k, v) for k, v in
                                         (("alpha", alpha), ("keep", keep), ("tau", tau), ("wsld_weight", wsld_weight)))
        if not 0.0 < keep <= 1.0 or not tau > 0 or alpha < 0 or wsld_weight < 0:
            raise SnnkdError("blurred KD needs 0 < keep <= 1, tau > 0 and non-negative weights")
        self.stage, self.t_stage, s_info, t_info = paired_stage(student, teacher, stage, self.name)
        cs, ct = s_info["channels"], t_info["channels"]
        freeze(teacher)
        self.align = nn.Conv2d(cs, ct, 1, bias=False) if cs != ct else nn.Identity()
        self.generator = generator(ct)
        self.alpha, self.keep, self.tau = float(alpha), float(keep), float(tau)
        self.wsld_weight, self.clip_teacher = float(wsld_weight), bool(clip_teacher)

    def forward(self, student, teacher, x, y) -> MethodOutput:
        t_out = self.teacher_stages(teacher, x)
        s_out = student.forward_stages(x)
        f_s = self.align(s_out.rates[self.stage])
        f_a = match_spatial(t_out.features[self.t_stage], f_s.shape[-2:])
        if self.clip_teacher:
            f_a = f_a / f_a.max().clamp_min(1e-12) * f_s.detach().max()
        mask = channel_mask(f_s.shape[0], f_s.shape[1], self.keep, f_s)
        bkd = ((self.generator(f_s * mask) - f_a) ** 2).sum() / f_s.shape[0]
        z_s = s_out.logits
        return MethodOutput(z_s, {
            "ce": F.cross_entropy(z_s, y),
            "bkd": self.alpha * bkd,
            "wsld": self.wsld_weight * wsld(z_s, t_out.logits, y, self.tau),
        })
