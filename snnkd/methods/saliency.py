"""``saliency``: CKDSNN = SAMD + NLD (Liu et al., 2025).

SAMD on a tapped stage pair (``stage``: a name or ``"student_stage:teacher_stage"``;
default the last of each; the teacher stage must be the one feeding its classifier):

* student map ``A_S[b,h,w] = sum_t sum_c s[t,b,c,h,w]`` (computed as ``T * sum_c rate``; the
  rate trainer runs the student with ``T = 1``, so there it is ``sum_c rate``, which the
  min-max normalisation below makes equal up to the ``1e-3``);
* teacher class activation map ``A_T = ReLU(sum_c W[yhat_b, c] F_A[b,c,h,w])`` with the
  teacher's classifier weights ``W`` and predicted class ``yhat_b`` (needs a GAP + linear
  head fed by that stage, so the tapped stage is the teacher's last; bilinearly resized
  to the student's size if they differ);
* each map min-max normalised over the whole batch: ``(A - min A) / (max(A - min A) + 1e-3)``
  (shift first, then divide by the shifted maximum, as the reference code's CAM
  normalisation does; dividing by ``max A`` instead shrinks the map whenever ``min A > 0``);
* ``P = softmax_{h,w}(A / samd_tau)``; ``L_SAMD = KL(P_T || P_S)`` (batchmean).

NLD: per sample ``mu, sigma`` = mean and (unbiased) std of ``z_S`` over classes,
``n = mu + eps * sigma^2`` with ``eps ~ N(0, I)``;
``p_S = (1 - noise) softmax(z_S/tau) + noise softmax(n/tau)``;
``L_NLD = nld_weight * KL(softmax(z_A/tau) || p_S)``.  Defaults (0.1, 2, 4) are the paper's;
with ``noise = 0`` NLD is plain ``tau^2`` KD.

``L = CE + samd_weight * L_SAMD + L_NLD``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.methods.adapters import as_float, model_name, paired_stage
from snnkd.methods.base import Method, MethodOutput, freeze, register_method
from snnkd.methods.losses import kl_probs


def minmax_batch(a: torch.Tensor) -> torch.Tensor:
    """``(A - min A) / (max(A - min A) + 1e-3)`` over the whole batch (CKDSNN's normalisation)."""
    shifted = a - a.min()
    return shifted / (shifted.max() + 1e-3)


def samd_loss(a_s: torch.Tensor, a_t: torch.Tensor, tau: float) -> torch.Tensor:
    """``KL(softmax(norm(A_T)/tau) || softmax(norm(A_S)/tau))`` over the H*W positions."""
    p_t = F.softmax(minmax_batch(a_t).flatten(1) / tau, dim=1)
    log_p_s = F.log_softmax(minmax_batch(a_s).flatten(1) / tau, dim=1)
    return kl_probs(p_t, log_p_s)


def nld_loss(z_s: torch.Tensor, z_a: torch.Tensor, noise: float, tau: float, eps: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(z_A/tau) || (1-noise) softmax(z_S/tau) + noise softmax(n/tau))``, ``n = mu + eps sigma^2``."""
    mu = z_s.mean(1, keepdim=True)
    sigma = z_s.std(1, keepdim=True)
    n = mu + eps * sigma ** 2
    # log p_S as a logsumexp of the two weighted log-softmaxes (exact log-softmax when noise = 0)
    log_w = [math.log(v) if v > 0 else -math.inf for v in (1.0 - noise, noise)]
    log_p_s = torch.logsumexp(torch.stack([log_w[0] + F.log_softmax(z_s / tau, dim=1),
                                           log_w[1] + F.log_softmax(n / tau, dim=1)]), dim=0)
    return kl_probs(F.softmax(z_a / tau, dim=1), log_p_s)


def class_activation_map(teacher: nn.Module, feat: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``ReLU(sum_c W[argmax z_A, c] F_A[:, c])`` -> ``[B, H, W]``."""
    w = teacher.head.fc.weight[logits.argmax(1)]  # [B, C]
    return F.relu(torch.einsum("bc,bchw->bhw", w, feat))


@register_method
class SaliencyKD(Method):
    name = "saliency"
    paper = "Liu et al., arXiv 2025 (CKDSNN)"
    params_help = {
        "stage": "stage whose spike counts give the student's saliency map (default: the last stage)",
        "samd_weight": "weight of the saliency alignment (SAMD) term",
        "samd_tau": "temperature of the spatial saliency distributions",
        "noise": "share of the noisy logits mixed into the student's softened output (NLD)",
        "tau": "temperature of the noisy logit (NLD) term",
        "nld_weight": "weight of the noisy logit (NLD) term",
    }

    def __init__(self, student, teacher, stage: str | None = None, samd_weight: float = 1.0, samd_tau: float = 2.0,
                 noise: float = 0.1, tau: float = 2.0, nld_weight: float = 4.0) -> None:
        super().__init__(student, teacher)
        samd_weight, samd_tau, noise, tau, nld_weight = (
            as_float(self.name, k, v) for k, v in (("samd_weight", samd_weight), ("samd_tau", samd_tau), ("noise", noise),
                                                 ("tau", tau), ("nld_weight", nld_weight)))
        if not 0.0 <= noise <= 1.0 or not tau > 0 or not samd_tau > 0 or samd_weight < 0 or nld_weight < 0:
            raise SnnkdError("saliency KD needs 0 <= noise <= 1, tau > 0, samd_tau > 0 and non-negative weights")
        self.stage, self.t_stage, _, t_info = paired_stage(student, teacher, stage, self.name)
        head = teacher.head
        if getattr(head, "kind", None) != "gap" or not isinstance(head.pre, nn.Identity) \
                or head.fc.in_features != t_info["channels"] or self.t_stage != teacher.stage_names[-1]:
            raise SnnkdError(f"method 'saliency' builds a class activation map from the teacher's classifier, so the "
                             f"teacher ({model_name(teacher)}) needs a global-average-pool + single linear head fed "
                             f"by stage {self.t_stage!r} ({t_info['channels']} channels)")
        freeze(teacher)
        self.samd_weight, self.samd_tau = float(samd_weight), float(samd_tau)
        self.noise, self.tau, self.nld_weight = float(noise), float(tau), float(nld_weight)

    def forward(self, student, teacher, x, y) -> MethodOutput:
        t_out = self.teacher_stages(teacher, x)
        s_out = student.forward_stages(x)
        a_s = student.T * s_out.rates[self.stage].sum(1)
        with torch.no_grad():
            a_t = class_activation_map(teacher, t_out.features[self.t_stage], t_out.logits)
            if a_t.shape[-2:] != a_s.shape[-2:]:
                a_t = F.interpolate(a_t[:, None], size=a_s.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        z_s = s_out.logits
        eps = torch.randn_like(z_s)
        return MethodOutput(z_s, {
            "ce": F.cross_entropy(z_s, y),
            "samd": self.samd_weight * samd_loss(a_s, a_t, self.samd_tau),
            "nld": self.nld_weight * nld_loss(z_s, t_out.logits, self.noise, self.tau, eps),
        })
