"""``feature``: KDSNN feature-based KD (Xu et al., CVPR 2023).

Student feature ``S`` = the firing rate (mean over T) of a tapped stage, mapped by a
learnable connector (1x1 conv + BN) to the teacher's channel count; teacher feature
``t`` = the paired teacher stage's output *before* its ReLU, resized to the student's
map when the two differ (teacher and student may be of different families).  Partial L2,
per element::

    d_i = 0               if S_i <= t_i <= 0
    d_i = (t_i - S_i)^2   otherwise
    L_distill = sum_i d_i / B,        L = CE(z_S, y) + alpha * sum_k w_k L_distill,k

``stages`` lists stage pairs (``"layer2"`` or ``"student_stage:teacher_stage"``; default the
last of each); ``weights`` gives ``w_k`` (default 1 each; ``"overhaul"`` gives the
overhaul-distillation weights ``1 / 2^(n-k-1)``, the last stage weighing 1).

With ``margin`` the teacher target is clamped from below, ``t = max(t, m_c)``, by the
per-channel margin of the overhaul-distillation code that KDSNN's rule comes from:
``m_c = E[x | x < 0]`` for ``x ~ N(beta_c, gamma_c^2)``, the BatchNorm that produces the
pre-activation (its shift ``beta`` and scale ``|gamma|``)::

    m_c = beta_c - |gamma_c| phi(beta_c/|gamma_c|) / Phi(-beta_c/|gamma_c|)   (or -3|gamma_c| if Phi < 1e-3)

(for a residual stage the BN is the last block's second one; the skip branch is not in
its statistics, the same approximation that code makes).

Default ``alpha = 1e-4``: ``L_distill`` is a *sum* over C*H*W elements (3,136 for
``layer2`` of ``resnet_fm_wide`` on 28x28 Fashion-MNIST); we measured 9.6e3 on one batch
of 64 for an untrained ``resnet_fm`` student against the trained teacher there, so 1e-4
starts it at about 1, the order of the CE (2.3), instead of swamping it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.methods.adapters import as_float, connector, match_spatial, paired_stage, stage_list
from snnkd.methods.base import Method, MethodOutput, freeze, register_method
from snnkd.models.base import StagedNet


def partial_l2(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """KDSNN's partial L2: ``sum_i [not (S_i <= t_i <= 0)] (t_i - S_i)^2 / B``."""
    skip = (s <= t) & (t <= 0)
    d = torch.where(skip, torch.zeros_like(s), (t - s) ** 2)
    return d.sum() / s.shape[0]


def bn_margin(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Per-channel ``E[x | x < 0]`` for ``x ~ N(bias, weight^2)`` (see the module docstring)."""
    std = bn.weight.detach().abs().double().clamp_min(1e-12)
    mean = bn.bias.detach().double()
    below = torch.special.ndtr(-mean / std)
    pdf = torch.exp(-0.5 * (mean / std) ** 2) / math.sqrt(2 * math.pi)
    m = torch.where(below > 1e-3, mean - std * pdf / below.clamp_min(1e-3), -3 * std)
    return m.float()


def last_bn(model: StagedNet, stage: str) -> nn.BatchNorm2d | None:
    """The last BatchNorm2d of ``stage``'s main branch (the one feeding its final activation;
    skip-connection BNs, under a ``shortcut``/``downsample`` module, are passed over)."""
    bns = [m for name, m in model.stages[stage].named_modules() if isinstance(m, nn.BatchNorm2d)
           and not any(part in ("shortcut", "downsample") for part in name.split("."))]
    return bns[-1] if bns else None


def stage_weights(weights: object, n: int, method: str) -> list[float]:
    if weights is None:
        return [1.0] * n
    if weights == "overhaul":
        return [1.0 / 2 ** (n - k - 1) for k in range(n)]
    if not isinstance(weights, list) or len(weights) != n:
        raise SnnkdError(f"method {method!r}: weights must be 'overhaul' or a list of {n} numbers, got {weights!r}")
    out = [as_float(method, "weights", w) for w in weights]
    if not all(w >= 0 and math.isfinite(w) for w in out):
        raise SnnkdError(f"method {method!r}: weights must be finite and >= 0, got {weights!r}")
    return out


@register_method
class FeatureKD(Method):
    name = "feature"
    paper = "Xu et al., CVPR 2023 (KDSNN)"
    params_help = {
        "stages": "stages tapped: 'layer2' or 'student_stage:teacher_stage' (default: the last stage)",
        "alpha": "weight of the partial L2 feature distance (a sum over map elements)",
        "weights": "per-stage weights w_k (default 1 each; 'overhaul': 1/2^(n-k-1))",
        "margin": "clamp the teacher target from below at the expected negative BatchNorm output",
    }

    def __init__(self, student, teacher, stages: list[str] | None = None, alpha: float = 1e-4,
                 weights: list[float] | str | None = None, margin: bool = False) -> None:
        super().__init__(student, teacher)
        alpha = as_float(self.name, "alpha", alpha)
        if not alpha >= 0:
            raise SnnkdError(f"feature KD needs alpha >= 0 (got {alpha})")
        if not isinstance(margin, bool):
            raise SnnkdError(f"method 'feature': margin must be true or false, got {margin!r}")
        self.alpha = float(alpha)
        specs = stage_list(stages, self.name)
        self.weights = stage_weights(weights, len(specs), self.name)
        freeze(teacher)
        self.pairs: list[tuple[str, str]] = []
        self.connectors = nn.ModuleDict()
        for spec in specs:
            s_name, t_name, s_info, t_info = paired_stage(student, teacher, spec, self.name)
            if teacher.last_act(t_name) is None:
                raise SnnkdError(f"method 'feature' needs the teacher's pre-activation at stage {t_name!r}, "
                                 "but that stage does not end in a ReLU")
            if s_name in self.connectors:
                raise SnnkdError(f"method 'feature': student stage {s_name!r} tapped twice")
            self.pairs.append((s_name, t_name))
            self.connectors[s_name] = connector(s_info["channels"], t_info["channels"])
            if margin:
                bn = last_bn(teacher, t_name)
                if bn is None:
                    raise SnnkdError(f"method 'feature': margin needs a BatchNorm in teacher stage {t_name!r}")
                self.register_buffer(f"margin_{s_name}", bn_margin(bn)[None, :, None, None])
        self.margin = margin

    def forward(self, student, teacher, x, y) -> MethodOutput:
        t_out = self.teacher_stages(teacher, x, preacts=True)
        s_out = student.forward_stages(x)
        loss = s_out.logits.new_zeros(())
        for (s_name, t_name), w in zip(self.pairs, self.weights):
            s = self.connectors[s_name](s_out.rates[s_name])
            t = match_spatial(t_out.preacts[t_name], s.shape[-2:])
            if self.margin:
                t = torch.maximum(t, getattr(self, f"margin_{s_name}"))
            loss = loss + w * partial_l2(s, t)
        return MethodOutput(s_out.logits, {"ce": F.cross_entropy(s_out.logits, y), "feat": self.alpha * loss})
