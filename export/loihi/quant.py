"""From a NIR graph to a Loihi network in fixed point, and a bit-exact emulator of it.

The layer graph (:mod:`snnkd.export.loihi.layers`, re-exported here) comes from a NIR graph.

**Fixed point (Loihi CUBA neuron, per step).**  Per layer a scale ``S`` maps real values
to synaptic units: integer weights ``w_q = 2 round(w S / (2 s_src))`` in ``[-256, 254]``
(8-bit, mixed sign: step 2; ``s_src = 2^q`` for the input, 1 for spikes), threshold
mantissa ``vth = round(theta S)`` (< 2^17), bias ``b_q = round(b S / 2^(e_c - 6))`` (13-bit
mantissa, per-channel exponent ``e_c`` in ``[6, 7]``, see below),
current decay ``iDecay = 4096`` (the current is this step's input), voltage decay
``dv = round(4096 (1 - beta))`` (12-bit; IF: 0).  Then, with ``a = sum w_q s`` (16-bit)::

    u = a << 6
    v = sign(v (4096 - dv)) (|v (4096 - dv)| >> 12) + u + (b_q << e_c)   (clipped to 24 bit)
    spike if v > vth << 6, then v = 0

so ``v / (64 S)`` follows the float model's ``h = beta v + W s + b`` up to rounding.
``S = min(254 s_src / max|w|, 4095 * 2^(E-6) / max|b|, 131071 / theta, overflow guards)``; the
guards keep ``|a| < 2^15`` and the output membrane ``< 2^23`` on calibration samples (training
data).  ``E`` is the largest bias exponent the target takes: 7 for the graph of Lava
processes (``LIFReset`` takes a 3-bit ``bias_exp`` per neuron), 6 for netx (its reader fixes
``bias_exp = 6``).  Each channel takes the smallest ``e_c`` its bias fits in, so only channels
with a large bias lose a bit of bias resolution.  Why: on the first layer of a 28x28 or 8x8
student the bias is often what limits ``S``; measured on the showcase's block-wise student
(digits, T = 4), its weights then used 54 of 254 levels, and that layer's own rounding flipped
1.6 % of its spikes (0.6 % with one more bias bit), an error every later layer inherits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from snnkd.export.loihi.layers import Layer, LoihiNet, Synapse, from_nir

__all__ = ["Layer", "LoihiNet", "Synapse", "from_nir", "quantise", "emulate", "float_forward",
           "choose_input_bits", "calibrate_thresholds", "logits_from_output", "weight_error", "bias_units"]

WEIGHT_MIN, WEIGHT_MAX = -256, 254
VTH_MAX = 2**17 - 1
BIAS_MAX = 2**12 - 1
BIAS_EXP, BIAS_EXP_MAX = 6, 7  # the weights' exponent; the largest 3-bit bias exponent used
A_IN_MAX = 2**15 - 1
V_MAX = 2**23 - 1
OUT_VTH = VTH_MAX


# --------------------------------------------------------------------------- quantisation
def _syn_current(syn: Synapse, x: torch.Tensor, w: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``W x`` of one synapse for ``x [B, ...]`` (an array ``w`` in float64; a tensor as it is)."""
    wt = w if isinstance(w, torch.Tensor) else torch.as_tensor(w, dtype=torch.float64)
    if syn.kind == "conv":
        return F.conv2d(x, wt, None, syn.stride, syn.padding, syn.dilation, syn.groups)
    return F.linear(x.flatten(1) if syn.flatten else x, wt)


def _even_round(x: np.ndarray) -> np.ndarray:
    return np.clip(2 * np.round(x / 2), WEIGHT_MIN, WEIGHT_MAX)


def max_input_bits(calib: torch.Tensor | None) -> int:
    """The most fixed-point bits ``q`` (0..7) that keep the input ``round(x 2^q)`` in signed
    8 bits on ``calib`` (``|x| <= 3`` assumed without it)."""
    xmax = float(calib.abs().max()) if calib is not None else 3.0
    return max(0, min(7, int(math.floor(math.log2(127.0 / max(xmax, 1e-6))))))


def quantise(net: LoihiNet, calib: torch.Tensor | None = None, input_bits: int | None = None,
             float_spikes: dict[str, torch.Tensor] | None = None, bias_correction: bool = False) -> dict:
    """Choose every layer's scale and set ``w_q``, ``vth``, ``bias_q``, ``dv`` in place.

    ``calib``: encoded calibration inputs ``[T, B, C, H, W]`` (float) for the overflow
    guards; the float model is run on them layer by layer.  ``input_bits``: the input's
    fixed-point bits ``q`` (default: the most that keep ``|x| 2^q <= 127``).  ``float_spikes``:
    :func:`float_forward` of ``calib`` when the caller has it already.  ``bias_correction``
    (with ``calib``): see :func:`weight_error`.  Returns a summary."""
    net.input_bits = max_input_bits(calib) if input_bits is None else int(input_bits)
    in_scale = {"input": 2.0 ** net.input_bits}
    if float_spikes is None and calib is not None:
        float_spikes = float_forward(net, calib)
    e_max = BIAS_EXP if net.sequential else BIAS_EXP_MAX  # sequential nets go to netx: bias_exp 6 only
    summary = {}
    for layer in net.layers:
        cands = [WEIGHT_MAX * in_scale.get(s.src, 1.0) / max(np.abs(s.weight).max(), 1e-12) for s in layer.synapses]
        S = min(cands)
        if np.abs(layer.bias).max() > 0:
            S = min(S, BIAS_MAX * 2.0 ** (e_max - BIAS_EXP) / np.abs(layer.bias).max())
        if layer.kind != "out":
            S = min(S, VTH_MAX / layer.threshold)
        if float_spikes is not None:
            cur = float_spikes["current:" + layer.name]  # [T, B, ...] real W s (no bias)
            amax = float(cur.abs().max())
            if amax > 0:
                S = min(S, 0.9 * A_IN_MAX / amax)
            if layer.kind == "out":
                acc = (cur + _bias_view(layer, cur[0])).sum(0).abs().max()
                S = min(S, 0.9 * V_MAX / 64.0 / max(float(acc), 1e-12))
        layer.scale = float(S)
        for s in layer.synapses:
            s.w_q = _even_round(s.weight * S / in_scale.get(s.src, 1.0)).astype(np.int64)
        corr = np.zeros_like(layer.bias)
        if bias_correction and float_spikes is not None:
            corr = weight_error(layer, S, in_scale, float_spikes, calib)
        b = (layer.bias - corr) * S  # in units of 2^-6 of the membrane, as the weights
        e = np.zeros(b.shape, np.int64)  # extra exponent over BIAS_EXP, per channel: the smallest that fits
        for _ in range(e_max - BIAS_EXP):
            e = np.where(np.abs(np.round(b / 2.0 ** e)) > BIAS_MAX, e + 1, e)
        layer.bias_exp = (BIAS_EXP + e).astype(np.int64)
        layer.bias_q = np.clip(np.round(b / 2.0 ** e), -BIAS_MAX - 1, BIAS_MAX).astype(np.int64)
        layer.vth = OUT_VTH if layer.kind == "out" else int(min(VTH_MAX, round(layer.threshold * S)))
        layer.dv = int(round(4096 * (1.0 - layer.beta)))
        summary[layer.name] = {"scale": layer.scale, "vth_mant": layer.vth, "v_decay": layer.dv, "i_decay": 4096,
                               "weight_min": int(min(s.w_q.min() for s in layer.synapses)),
                               "weight_max": int(max(s.w_q.max() for s in layer.synapses)),
                               "bias_min": int(layer.bias_q.min()), "bias_max": int(layer.bias_q.max()),
                               "bias_exp_max": int(layer.bias_exp.max()),
                               "bias_correction_max": float(np.abs(corr).max()),
                               "depth": layer.depth, "relays": [s.relays for s in layer.synapses]}
    summary["input_bits"] = net.input_bits
    return summary


@torch.no_grad()
def weight_error(layer: Layer, S: float, in_scale: dict[str, float], float_spikes: dict[str, torch.Tensor],
                 calib: torch.Tensor) -> np.ndarray:
    """The mean current error per channel (per neuron for dense) that rounding the
    weights adds, in real units, on the float model's own inputs over the calibration set:

        e_c = mean_{t, b, h, w} sum_syn (W_q s_src / S - W) x_src          (s_src = 2^q or 1)

    ``quantise`` subtracts it from the bias (empirical bias correction, as in Nagel et al.
    2019, "Data-free quantization through weight equalization and bias correction"): the
    8-bit weights of a channel with few levels shift its mean input, and since one threshold
    serves the whole layer, :func:`calibrate_thresholds` can only remove the part of that
    shift common to all channels; this removes each channel's own.  Measured 2026-12-02 on a
    Fashion-MNIST ``resnet_fm`` student (IF, T = 4, all 10,000 test images): the spike
    agreement with PyTorch of every layer after the stem rose by 0.4-0.75 pp (e.g. 97.53 ->
    98.27 %), the prediction agreement only from 96.73 to 96.75 %."""
    err = None
    for syn in layer.synapses:
        x = calib if syn.src == "input" else float_spikes[syn.src]
        x = x.to(torch.float64).flatten(0, 1)  # [T B, ...]
        dw = syn.w_q.astype(np.float64) * in_scale.get(syn.src, 1.0) / S - syn.weight
        e = _syn_current(syn, x, dw)
        err = e if err is None else err + e
    dims = [0, 2, 3] if err.dim() == 4 else [0]
    return err.mean(dim=dims).numpy()


@torch.no_grad()
def choose_input_bits(net: LoihiNet, calib: torch.Tensor, tries: int = 3) -> tuple[int, dict[int, float]]:
    """The input's fixed-point bits ``q`` among the ``tries`` largest that fit 8 bits, chosen
    by the spike agreement of the layers the input feeds, emulator against the float model,
    on ``calib`` (training data).  Returns ``(q, {q: agreement})``; ties go to the larger ``q``.

    Why a search: the input layer's 16-bit synaptic input bounds ``|w_q| |x_q|``, so every
    bit given to the input is taken from its weights.  Measured on a Fashion-MNIST
    ``resnet_fm`` student (T = 4): ``q = 5`` (the most that fit) left the stem's weights 136 of
    254 levels and 97.8 % of its spikes right; ``q = 4`` gives 254 levels and 99.3 %."""
    fed = [lay.name for lay in net.layers if any(s.src == "input" for s in lay.synapses)]
    ref = float_forward(net, calib)
    q_max = max_input_bits(calib)
    scores: dict[int, float] = {}
    for q in range(q_max, max(-1, q_max - tries), -1):
        quantise(net, calib, q, ref)  # the float model does not depend on q: run once
        emu = emulate(net, calib)
        scores[q] = float(np.mean([float((emu[n] == ref[n]).to(torch.float64).mean()) for n in fed]))
    best = max(scores, key=lambda q: (scores[q], q))
    return best, scores


def bias_units(layer: Layer) -> np.ndarray:
    """The bias the neuron adds per step, in membrane units: ``b_q << e_c``."""
    exp = layer.bias_exp if layer.bias_exp is not None else np.full(layer.bias_q.shape, BIAS_EXP)
    return layer.bias_q.astype(np.float64) * 2.0 ** exp


def _bias_view(layer: Layer, like: torch.Tensor, b: np.ndarray | None = None) -> torch.Tensor:
    b = layer.bias if b is None else b
    t = torch.as_tensor(b, dtype=torch.float64)
    return t.reshape(-1, 1, 1) if like.dim() == 4 else t


@torch.no_grad()
def float_forward(net: LoihiNet, x_seq: torch.Tensor) -> dict[str, torch.Tensor]:
    """The float model on the layer graph (``h = beta v + W s + b``, spike ``h > theta``,
    reset to 0): spikes and synaptic currents per layer, ``[T, B, ...]``."""
    return _run(net, x_seq.to(torch.float64), quantised=False)


@torch.no_grad()
def emulate(net: LoihiNet, x_seq: torch.Tensor) -> dict[str, torch.Tensor]:
    """Bit-exact Loihi arithmetic of the quantised net (no delays): spikes per layer and
    the output membrane ``v`` per step, ``[T, B, ...]``."""
    xq = torch.round(x_seq.to(torch.float64) * 2.0 ** net.input_bits).clamp(-128, 127)
    return _run(net, xq, quantised=True)


def _exact(x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
    """``fx`` (the integer arithmetic's value, bit for bit), with ``x``'s gradient when ``x``
    has one (straight-through: ``fx + (x - x) = fx`` exactly, ``d/dx = 1``)."""
    return fx if not x.requires_grad else fx.detach() + (x - x.detach())


def wrap16(cur: torch.Tensor) -> torch.Tensor:
    """The 16-bit synaptic input ``a`` (two's complement wrap; the overflow guards of
    :func:`quantise` keep it from wrapping on calibration data)."""
    return _exact(cur, torch.remainder(cur.detach() + 2**15, 2**16) - 2**15)


def chip_step(v: torch.Tensor, cur: torch.Tensor, b: torch.Tensor, dv: int, vth: int,
              spike: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the Loihi CUBA neuron in integer membrane units, the one place it is written
    (the emulator runs it; benchmarks/loihi_qat.py trains through it): returns ``(s, h)``, ``h`` before reset::

        h = clip(sign(v) (|v (4096 - dv)| >> 12) + (a << 6) + b, +-(2^23 - 1)),   s = [h > vth << 6]

    ``a = cur`` (already 16-bit), ``b = b_q << e_c``.  The rounding steps pass gradients
    straight through when ``v``/``cur`` carry one; ``spike`` replaces the step's Heaviside
    (``u = h - vth 64 -> s``) by one with a surrogate gradient."""
    h = v * ((4096 - dv) / 4096.0)
    h = _exact(h, torch.trunc(h.detach())) + cur * 64.0 + b
    h = _exact(h, h.detach().clamp(-V_MAX, V_MAX))
    u = h - vth * 64.0
    s = (u > 0).to(h.dtype) if spike is None else spike(u)
    return s, h


def _run(net: LoihiNet, x_seq: torch.Tensor, quantised: bool) -> dict[str, torch.Tensor]:
    T = x_seq.shape[0]
    out: dict[str, list[torch.Tensor]] = {}
    state: dict[str, torch.Tensor] = {}
    for t in range(T):
        act = {"input": x_seq[t]}
        for layer in net.layers:
            cur = sum(_syn_current(s, act[s.src], s.w_q if quantised else s.weight) for s in layer.synapses)
            if quantised:
                cur = wrap16(cur)
                v = state.get(layer.name, torch.zeros_like(cur))
                s, v = chip_step(v, cur, _bias_view(layer, cur, bias_units(layer)), layer.dv, layer.vth)
            else:
                v = state.get(layer.name, torch.zeros_like(cur))
                v = layer.beta * v + cur + _bias_view(layer, cur)
                s = (v > layer.threshold).to(v.dtype)
            out.setdefault("current:" + layer.name, []).append(cur)
            out.setdefault("v:" + layer.name, []).append(v.clone())
            state[layer.name] = v * (1 - s)  # hard reset to 0 (the chip's and the float model's)
            act[layer.name] = s
            out.setdefault(layer.name, []).append(s)
    return {k: torch.stack(v) for k, v in out.items()}


def logits_from_output(net: LoihiNet, v_out: torch.Tensor) -> torch.Tensor:
    """Real logits ``mean_t (W s_t + b)`` from the output layer's integer membrane after
    ``T`` steps: ``v / (64 S T)``."""
    out = net.layers[-1]
    return v_out.to(torch.float64) / (64.0 * out.scale * net.T)


@torch.no_grad()
def calibrate_thresholds(net: LoihiNet, calib: torch.Tensor, max_shift: float = 0.03) -> dict[str, int]:
    """Calibration: per layer, in order, move the threshold mantissa by up to
    ``max_shift * vth`` to the value whose fixed-point spikes agree best with the float
    model's spikes on ``calib`` (earlier layers already calibrated).  Returns the shifts.

    Rounding weights to 8 bits shifts each neuron's mean input slightly; a shared
    threshold offset compensates the part of it that is common to the layer."""
    ref = float_forward(net, calib)
    shifts: dict[str, int] = {}
    calib = calib.to(torch.float64)
    for layer in net.layers:
        if layer.kind == "out":
            continue
        base = layer.vth
        k = max(1, int(round(max_shift * base)))
        step = max(1, k // 4)  # at most 9 candidates
        best, best_agree = base, -1.0
        # the unshifted threshold is always a candidate, so calibration never lowers agreement
        for vth in sorted({base, *range(max(1, base - k), min(VTH_MAX, base + k) + 1, step)}):
            layer.vth = vth
            agree = float((emulate(net, calib)[layer.name] == ref[layer.name]).to(torch.float64).mean())
            if agree > best_agree + 1e-12 or (abs(agree - best_agree) <= 1e-12 and abs(vth - base) < abs(best - base)):
                best, best_agree = vth, agree
        layer.vth = best
        shifts[layer.name] = best - base
    return shifts
