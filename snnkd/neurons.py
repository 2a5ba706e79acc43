"""Spiking neurons: a pure step function inside a stateful, multi-step module.

Membrane update per time step ``t`` (``x_t`` input current, ``v`` membrane):

* charge      ``h_t = beta * v_{t-1} + x_t``   (IF: ``beta = 1``; LIF: ``beta = decay``
  or, when given as a time constant, ``beta = 1 - 1/tau``)
* fire        ``s_t = Theta(h_t - theta)``  (strict ``>``, as NIR and Loihi define it)
* reset hard  ``v_t = h_t * (1 - s_t)``  (to zero)
* reset soft  ``v_t = h_t - theta * s_t``  (subtract the threshold)

``Theta`` is the Heaviside step in the forward pass; its backward pass uses a
surrogate derivative ``g'(u) = (1/w) f(u/w)`` of width ``w`` where ``f`` has unit area:

* ``atan``      ``f(u) = 1 / (2 (1 + (pi u / 2)^2))``
* ``sigmoid``   ``f(u) = sigma(u) (1 - sigma(u))``
* ``triangle``  ``f(u) = max(0, 1 - |u|)``

Tensors are multi-step ``[T, B, ...]``.  Inside models, stateless layers see the time
axis folded into the batch (``[T*B, ...]``); a neuron unfolds it with its ``T``.

Rate-based training (``snnkd.train.rate``) puts a neuron in one of two extra modes:

* ``record``: run the ``T`` steps without a graph and keep the firing rate
  ``r = (1/T) sum_t s_t`` and the eligibility ``e = (1/T) sum_t kappa_t g'(h_t - theta)``
  (see :func:`record_steps`), both ``[B, ...]``;
* ``rate``: take a time-averaged input ``c`` ``[B, ...]`` and return ``r`` with the
  local derivative ``dr/dc = e`` (see :func:`rate_fn`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn

from snnkd.errors import SnnkdError

SurrogateKind = Literal["atan", "sigmoid", "triangle"]
SURROGATES: tuple[str, ...] = ("atan", "sigmoid", "triangle")


def surrogate_grad(u: torch.Tensor, kind: str, width: float) -> torch.Tensor:
    """Surrogate derivative ``(1/w) f(u/w)`` of the Heaviside step at ``u = h - theta``."""
    z = u / width
    if kind == "atan":
        g = 0.5 / (1.0 + (math.pi / 2.0 * z) ** 2)
    elif kind == "sigmoid":
        s = torch.sigmoid(z)
        g = s * (1.0 - s)
    elif kind == "triangle":
        g = torch.clamp(1.0 - z.abs(), min=0.0)
    else:
        raise ValueError(f"unknown surrogate {kind!r}; choose one of {SURROGATES}")
    return g / width


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward (``u > 0``), surrogate derivative backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, kind: str, width: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.kind, ctx.width = kind, width
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad_out * surrogate_grad(u, ctx.kind, ctx.width), None, None


def spike_fn(u: torch.Tensor, kind: str = "atan", width: float = 0.5) -> torch.Tensor:
    """``Theta(u)`` with the chosen surrogate gradient."""
    return _SpikeFn.apply(u, kind, width)


@dataclass(frozen=True)
class NeuronConfig:
    """Parameters of an IF or LIF neuron.  ``decay`` and ``tau`` are two spellings of the
    LIF leak (``beta = decay = 1 - 1/tau``); give at most one."""

    kind: Literal["if", "lif"] = "if"
    threshold: float = 1.0
    decay: float | None = None
    tau: float | None = None
    reset: Literal["hard", "soft"] = "hard"
    detach_reset: bool = True
    surrogate: SurrogateKind = "atan"
    width: float = 0.5
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("if", "lif"):
            raise ValueError(f"neuron kind must be 'if' or 'lif', got {self.kind!r}")
        if self.reset not in ("hard", "soft"):
            raise ValueError(f"reset must be 'hard' or 'soft', got {self.reset!r}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if not self.width > 0:
            raise ValueError(f"surrogate width must be > 0, got {self.width}")
        if self.kind == "lif":
            if self.decay is not None and self.tau is not None:
                raise ValueError("give the LIF leak as decay or tau, not both")
            if self.decay is None and self.tau is None:
                raise ValueError("a LIF neuron needs decay or tau")
            if self.decay is not None and not 0.0 <= self.decay <= 1.0:
                raise ValueError(f"decay must lie in [0, 1], got {self.decay}")
            if self.tau is not None and not self.tau >= 1.0:
                raise ValueError(f"tau must be >= 1 (time steps), got {self.tau}")

    @property
    def beta(self) -> float:
        """Membrane retention per step: 1 for IF, ``decay`` or ``1 - 1/tau`` for LIF."""
        if self.kind == "if":
            return 1.0
        if self.decay is not None:
            return float(self.decay)
        return 1.0 - 1.0 / float(self.tau)  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        return d


def neuron_step(
    x: torch.Tensor, v: torch.Tensor, cfg: NeuronConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One time step.  Returns ``(spike, v_next, h)`` where ``h`` is the pre-reset membrane."""
    h = cfg.beta * v + x if cfg.beta != 1.0 else v + x
    s = spike_fn(h - cfg.threshold, cfg.surrogate, cfg.width)
    s_r = s.detach() if cfg.detach_reset else s
    if cfg.reset == "hard":
        v_next = h * (1.0 - s_r)
    else:
        v_next = h - cfg.threshold * s_r
    return s, v_next, h


def run_steps(
    x_seq: torch.Tensor, cfg: NeuronConfig, v0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generic time loop over ``x_seq`` of shape ``[T, ...]``.  Returns ``(spikes, v_T)``."""
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    out = []
    for t in range(x_seq.shape[0]):
        s, v, _ = neuron_step(x_seq[t], v, cfg)
        out.append(s)
    return torch.stack(out), v


def surrogate_grad_(u: torch.Tensor, kind: str, width: float) -> torch.Tensor:
    """In-place :func:`surrogate_grad`: overwrites ``u = h - theta`` with ``g'(u)``."""
    if kind == "atan":
        return u.mul_(math.pi / (2.0 * width)).square_().add_(1.0).reciprocal_().mul_(0.5 / width)
    if kind == "sigmoid":
        sig = u.div_(width).sigmoid_()
        return sig.mul_(1.0 - sig).div_(width)
    if kind == "triangle":
        return u.abs_().mul_(-1.0 / width).add_(1.0).clamp_(min=0.0).div_(width)
    raise ValueError(f"unknown surrogate {kind!r}; choose one of {SURROGATES}")


def _charge_fire_reset(x_t: torch.Tensor, v: torch.Tensor, h_t: torch.Tensor, s_t: torch.Tensor,
                       cfg: NeuronConfig) -> None:
    """One step written into preallocated buffers: ``h_t = beta v + x_t``,
    ``s_t = [h_t > theta]``, ``v = reset(h_t, s_t)`` (in place)."""
    if cfg.beta == 1.0:
        torch.add(x_t, v, out=h_t)
    else:
        torch.mul(v, cfg.beta, out=h_t).add_(x_t)
    torch.gt(h_t, cfg.threshold, out=s_t)
    if cfg.reset == "hard":
        torch.addcmul(h_t, h_t, s_t, value=-1.0, out=v)
    else:
        torch.sub(h_t, s_t, alpha=cfg.threshold, out=v)



def _unroll(x_seq: torch.Tensor, v0: torch.Tensor | None, cfg: NeuronConfig
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward time loop without a graph: pre-reset membranes ``h``, spikes, final ``v``."""
    h = torch.empty_like(x_seq, memory_format=torch.contiguous_format)
    spikes = torch.empty_like(h)
    v = torch.zeros_like(h[0]) if v0 is None else v0.clone(memory_format=torch.contiguous_format)
    for t in range(x_seq.shape[0]):
        _charge_fire_reset(x_seq[t], v, h[t], spikes[t], cfg)
    return h, spikes, v

class _MultiStepFn(torch.autograd.Function):
    """The ``T`` steps of :func:`neuron_step` as one autograd node (BPTT, same gradients).

    Forward writes ``h_t`` and ``s_t`` into ``[T, ...]`` buffers and converts ``h`` in
    place into ``sg_t = g'(h_t - theta)``; it saves ``sg`` and the output spikes (plus
    ``h`` for hard reset without detach).  Backward runs the adjoint recursion

    ``dL/dh_t = dL/ds_t sg_t + dL/dv_t rho_t``,  ``dL/dv_{t-1} = beta dL/dh_t``,
    ``dL/dx_t = dL/dh_t``, ``dL/dv_T`` from the returned final membrane,

    with ``rho_t = dv_t/dh_t`` of :func:`reset_factor`.
    """

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, v0: torch.Tensor | None, cfg: NeuronConfig, need_grad: bool):  # type: ignore[override]
        h, spikes, v = _unroll(x_seq, v0, cfg)
        ctx.cfg, ctx.has_v0, ctx.done = cfg, v0 is not None, False
        if need_grad:
            keep_h = h.clone() if (cfg.reset == "hard" and not cfg.detach_reset) else None
            sg = surrogate_grad_(h.sub_(cfg.threshold), cfg.surrogate, cfg.width)
            ctx.save_for_backward(sg, spikes, keep_h)
        return spikes, v

    @staticmethod
    def backward(ctx, g_s: torch.Tensor | None, g_v: torch.Tensor | None):  # type: ignore[override]
        if ctx.done:
            raise RuntimeError("the fused neuron's backward reuses its buffers and runs once per forward")
        sg, spikes, h = ctx.saved_tensors
        cfg: NeuronConfig = ctx.cfg
        T, beta = sg.shape[0], cfg.beta
        rho: torch.Tensor | None = None  # dv_t/dh_t when it involves sg (reset not detached)
        if not cfg.detach_reset:
            rho = 1.0 - cfg.threshold * sg if cfg.reset == "soft" else (1.0 - spikes).sub_(h * sg)
        if g_s is None:
            gh = torch.zeros_like(sg)
        elif rho is None:  # sg is needed no more: turn it into dL/dh in place
            ctx.done = True
            gh = sg.mul_(g_s)
        else:
            gh = g_s * sg

        def add_dv(t: int, dv: torch.Tensor, scale: float) -> None:
            """``gh[t] += scale * dv * rho_t``."""
            if rho is not None:
                gh[t].addcmul_(dv, rho[t], value=scale)
            elif cfg.reset == "soft":
                gh[t].add_(dv, alpha=scale)
            else:  # hard, detached: rho = 1 - s
                gh[t].add_(dv, alpha=scale).addcmul_(dv, spikes[t], value=-scale)

        if g_v is not None:
            add_dv(T - 1, g_v, 1.0)
        for t in range(T - 2, -1, -1):  # dL/dv_t = beta dL/dh_{t+1}
            add_dv(t, gh[t + 1], beta)
        g_v0 = gh[0] * beta if ctx.has_v0 else None
        return gh, g_v0, None, None


def multi_step(x_seq: torch.Tensor, cfg: NeuronConfig,
               v0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused :func:`run_steps` (same spikes, final membrane and surrogate gradients):
    one autograd node for the whole sequence, saving ``sg`` instead of every step's graph."""
    need_grad = torch.is_grad_enabled() and (x_seq.requires_grad or (v0 is not None and v0.requires_grad))
    return _MultiStepFn.apply(x_seq, v0, cfg, need_grad)


def reset_factor(s: torch.Tensor, h: torch.Tensor, sg: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor | float:
    """``rho_t = dv_t / dh_t`` of the reset, with ``sg = g'(h_t - theta)``:

    soft + detached reset ``1``; soft ``1 - theta sg``; hard + detached ``1 - s``;
    hard ``1 - s - h sg``."""
    if cfg.reset == "soft":
        return 1.0 if cfg.detach_reset else 1.0 - cfg.threshold * sg
    return 1.0 - s if cfg.detach_reset else 1.0 - s - h * sg


@torch.no_grad()
def record_steps(
    x_seq: torch.Tensor, cfg: NeuronConfig, v0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``T`` steps of :func:`neuron_step` without a graph, recording rate and eligibility.

    Returns ``(spikes [T, ...], r, e, v_T)`` with ``r = (1/T) sum_t s_t`` and
    ``e = (1/T) sum_t kappa_t g'(h_t - theta)``, where ``kappa_0 = 1`` and
    ``kappa_t = 1 + beta * rho_{t-1} * kappa_{t-1}`` (``rho`` from :func:`reset_factor`).

    ``kappa_t = dh_t/dc`` when every step receives the same input ``c``, so ``e = dr/dc``
    exactly for a constant input: for soft reset with detached reset ``rho = 1`` and
    ``kappa_t = 1 + lambda kappa_{t-1}`` (methods.md section 7); for hard reset the
    detached reset zeroes the carried membrane (``rho = 1 - s``), so ``kappa`` restarts at
    1 after each spike; IF is ``beta = lambda = 1`` (``kappa_t = t + 1`` between resets).
    """
    T = x_seq.shape[0]
    h, spikes, v = _unroll(x_seq, v0, cfg)
    keep_h = h.clone() if (cfg.reset == "hard" and not cfg.detach_reset and T > 1) else None
    sg = surrogate_grad_(h.sub_(cfg.threshold), cfg.surrogate, cfg.width)
    if cfg.reset == "soft" and cfg.detach_reset:  # kappa_t = 1 + beta kappa_{t-1}: the same for every neuron
        w = [1.0]
        for _ in range(T - 1):
            w.append(1.0 + cfg.beta * w[-1])
        e = torch.tensordot(torch.tensor(w, dtype=sg.dtype, device=sg.device), sg, dims=1)
    else:
        e = sg[0].clone()
        kappa = torch.ones_like(e)
        for t in range(1, T):
            if cfg.reset == "hard" and cfg.detach_reset:  # rho = 1 - s
                kappa.addcmul_(kappa, spikes[t - 1], value=-1.0)
            else:
                kappa.mul_(reset_factor(spikes[t - 1], keep_h[t - 1] if keep_h is not None else h, sg[t - 1], cfg))
            if cfg.beta != 1.0:
                kappa.mul_(cfg.beta)
            e.addcmul_(kappa.add_(1.0), sg[t])
    r = spikes.mean(0)
    return spikes, r, e.div_(T), v


class _RateFn(torch.autograd.Function):
    """Value ``r``, gradient ``e * grad``: the same as ``r + c*e - (c*e).detach()``."""

    @staticmethod
    def forward(ctx, c: torch.Tensor, r: torch.Tensor, e: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(e)
        return r.clone()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (e,) = ctx.saved_tensors
        return grad_out * e, None, None


def rate_fn(c: torch.Tensor, r: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Rate-pass neuron: returns ``r.detach() + c*e - (c*e).detach()`` (value ``r``,
    ``dr/dc = e``), saving only ``e`` for the backward pass."""
    return _RateFn.apply(c, r.detach(), e.detach())


NeuronMode = Literal["spike", "record", "rate"]


def fp32_current(x: torch.Tensor) -> torch.Tensor:
    """A bf16/fp16 input current as fp32 (other dtypes unchanged).

    Under mixed precision (``--precision bf16|fp16``) only convolutions and linear layers
    compute in the low precision; the neuron keeps its membrane and eligibility in fp32
    so that a spike is decided on an fp32 potential: in bf16 (8-bit mantissa) the
    threshold itself and every potential near it would be rounded to steps of 2^-7, and
    a small current added to a large membrane over ``T`` steps would be lost.  The spikes
    are 0/1, exact in every precision."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


class SpikingNeuron(nn.Module):
    """Stateful multi-step IF/LIF neuron.

    ``forward`` takes ``[T*B, ...]`` (time folded into batch, ``T = self.T``) and
    returns spikes of the same shape.  The membrane left after the last step is kept
    in ``self.v`` and continues on the next call until :func:`reset_net`.

    ``mode`` is ``"spike"`` (the above), ``"record"`` (the same spikes, computed without a
    graph, keeping ``rate_r`` and ``rate_e``; see :func:`record_steps`) or ``"rate"``
    (input ``[B, ...]``, output :func:`rate_fn` of the recorded ``rate_r``/``rate_e``).

    A bf16/fp16 input is cast to fp32 first (:func:`fp32_current`): the state and the
    spikes are fp32 whatever the precision of the layers around the neuron.
    """

    def __init__(self, cfg: NeuronConfig | None = None, T: int = 1, **kwargs) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else NeuronConfig(**kwargs)
        self.T = T
        self.v: torch.Tensor | None = None
        self.mode: NeuronMode = "spike"
        self.rate_r: torch.Tensor | None = None
        self.rate_e: torch.Tensor | None = None

    def reset(self) -> None:
        self.v = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fp32_current(x)
        if self.mode == "rate":
            return self._forward_rate(x)
        T = self.T
        if x.shape[0] % T:
            raise ValueError(f"leading dim {x.shape[0]} is not a multiple of T={T}")
        x_seq = x.reshape(T, x.shape[0] // T, *x.shape[1:])
        v0 = self.v if self.v is not None and self.v.shape == x_seq.shape[1:] else None
        if self.mode == "record":
            spikes, self.rate_r, self.rate_e, self.v = record_steps(x_seq, self.cfg, v0)
        else:
            spikes, self.v = multi_step(x_seq, self.cfg, v0)
        return spikes.reshape(x.shape)

    def _forward_rate(self, c: torch.Tensor) -> torch.Tensor:
        if self.rate_r is None or self.rate_e is None:
            raise SnnkdError("a neuron in rate mode has no recorded spike pass; run the model in record mode first")
        if self.rate_r.shape != c.shape:
            raise SnnkdError(f"rate pass input {tuple(c.shape)} does not match the recorded spike pass "
                             f"{tuple(self.rate_r.shape)}; the rate pass must see the spike pass's input")
        return rate_fn(c, self.rate_r, self.rate_e)

    def extra_repr(self) -> str:
        c = self.cfg
        leak = f", beta={c.beta:g}" if c.kind == "lif" else ""
        return f"{c.kind}, T={self.T}, threshold={c.threshold}{leak}, reset={c.reset}, surrogate={c.surrogate}({c.width})"


def reset_net(model: nn.Module) -> None:
    """Reset the state of every spiking neuron in ``model``."""
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.reset()


def set_time_steps(model: nn.Module, T: int) -> None:
    """Set the number of time steps ``T`` on every spiking neuron in ``model``."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.T = T
