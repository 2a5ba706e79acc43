"""``logit``: KDSNN response-based KD (Xu et al., CVPR 2023).

``L = (1 - alpha) * CE(z_S, y) + alpha * tau^2 * KL(softmax(z_A/tau) || softmax(z_S/tau))``
"""

from __future__ import annotations

import torch.nn.functional as F

from snnkd.errors import SnnkdError
from snnkd.methods.adapters import as_float
from snnkd.methods.base import Method, MethodOutput, register_method
from snnkd.methods.losses import kd_kl


@register_method
class LogitKD(Method):
    name = "logit"
    paper = "Xu et al., CVPR 2023 (KDSNN)"
    params_help = {
        "tau": "softmax temperature of the KL term (scaled by tau^2)",
        "alpha": "weight of the KD term; CE gets 1 - alpha",
    }

    def __init__(self, student, teacher, tau: float = 4.0, alpha: float = 0.9) -> None:
        super().__init__(student, teacher)
        tau, alpha = as_float(self.name, "tau", tau), as_float(self.name, "alpha", alpha)
        if not tau > 0 or not 0.0 <= alpha <= 1.0:
            raise SnnkdError(f"logit KD needs tau > 0 and 0 <= alpha <= 1 (got tau={tau}, alpha={alpha})")
        self.tau, self.alpha = float(tau), float(alpha)

    def forward(self, student, teacher, x, y) -> MethodOutput:
        z_t = self.teacher_stages(teacher, x).logits
        z_s = student(x)
        return MethodOutput(z_s, {
            "ce": (1.0 - self.alpha) * F.cross_entropy(z_s, y),
            "kd": self.alpha * kd_kl(z_s, z_t, self.tau),
        })
