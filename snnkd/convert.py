"""ANN-to-SNN conversion: the data-based robust normalisation of Rueckauer et al. (2017).

Rueckauer, Lungu, Hu, Pfeiffer, Liu, "Conversion of continuous-valued deep networks to
efficient event-driven networks", Front. Neurosci. 11:682 (2017), section 2.2.3.  The
trained ANN teacher (``snnkd pretrain``) is run on ``N`` training batches; at every
activation site ``l`` (each ReLU of the model definition, the seam where the SNN has its
neuron) the activations ``a_l`` are recorded and the scale

    lambda_l = P_p({a_l > 0})      (p = 99.9: the p-th percentile of the non-zero activations)

is taken, robust to the few outliers a maximum would follow.  As in snntoolbox's
normalisation the percentile is over the non-zero activations of all ``N`` batches together
(spikingjelly's ``ann2snn`` ``'99.9%'`` mode takes it per batch over all values, zeros
included, and averages the batches with momentum 0.1).  A site that never activates gets
``lambda_l = 1`` (it never fires either way).  At most :data:`MAX_VALUES` values per site are
kept (a seeded uniform subsample per batch beyond that), so calibration memory stays bounded.

The SNN has the same architecture and weights; each ReLU becomes a :class:`ScaledIF`:

    X'_t = X_t / lambda_l,   IF with V_th = 1 and soft reset (V_t = H_t - S_t),   Y_t = lambda_l S_t

the scaling wrapper of spikingjelly's Converter (``VoltageScaler(1/lambda) -> IFNode(v_th=1,
soft reset) -> VoltageScaler(lambda)``).  Soft reset (reset by subtraction) keeps the
residual charge, so the rate ``sum_t S_t / T`` approximates ``min(a_l / lambda_l, 1)`` with
an error below ``1 / T`` (Rueckauer eq. 2-5), and ``Y`` approximates the ReLU output clipped at
``lambda_l``.  Inputs are the analog images repeated every step (direct encoding, the
constant input current of Rueckauer's section 2.1); biases and BatchNorm shifts act as constant
currents; logits are the head's output averaged over ``T``.

Why the wrapper and not weights folded with ``W_l <- W_l lambda_{l-1} / lambda_l``: the
wrapper is exact for every architecture of the registry without knowing its graph.
Folding is exact for a chain conv -> BN -> act (scale the conv weight by ``lambda_{l-1}`` and
BN's weight and bias by ``1 / lambda_l``), but an identity shortcut adds ``lambda_{l-1} S``
to the next membrane with no weight to fold ``lambda_{l-1} / lambda_l`` into, so residual
nets would need extra identity synapses.  With the wrapper, a spike carries the value
``lambda_l`` (a graded spike): on a chip that is a spike into synapses whose weights are
``lambda_l W``, so it costs the same synaptic operations as a binary spike, and
:func:`snnkd.ops.count_ops` counts it as one (the neuron's :attr:`ScaledIF.spike_value`).

Max pooling is refused (max over spikes is not max over rates; Rueckauer's gating is not
implemented).  The scales live in the checkpoint as buffers (``<site>.scale``) and the
conversion record in ``meta["conversion"]``; both are checked on load
(:func:`check_conversion_meta`, :func:`check_scales`).  NIR, ONNX and Lava export refuse a
converted model (:func:`refuse_export`): graded spikes and the scalers are not in our exporters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.models.base import StagedNet
from snnkd.neurons import NeuronConfig, SpikingNeuron

METHOD = "rueckauer2017-percentile"
NEURON = NeuronConfig(kind="if", threshold=1.0, reset="soft")
MAX_VALUES = 4_000_000  # recorded activations kept per site (all of them on digits)
CONVERSION_KEYS = {"method": str, "percentile": float, "calib_batches": int, "calib_samples": int,
                   "teacher": str, "teacher_accuracy": float}


class ScaledIF(SpikingNeuron):
    """IF neuron (threshold 1, soft reset) between the scalers ``1 / lambda`` and ``lambda``:
    ``Y = lambda * IF(X / lambda)``; ``lambda`` is the buffer :attr:`scale`."""

    def __init__(self, cfg: NeuronConfig | None = None, T: int = 1) -> None:
        super().__init__(cfg if cfg is not None else NEURON, T)
        self.register_buffer("scale", torch.ones(()))

    @property
    def spike_value(self) -> float:
        """The value one output spike carries (``lambda``)."""
        return float(self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x / self.scale) * self.scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={float(self.scale):.4g}"


def activation_sites(model: nn.Module) -> list[str]:
    """Names of the activation modules (ReLU in an ANN, neurons in an SNN) in module order."""
    return [name for name, m in model.named_modules() if isinstance(m, (nn.ReLU, SpikingNeuron))]


def check_convertible(ann: StagedNet, meta: dict, where: str) -> None:
    """Refuse what this conversion cannot turn into an SNN, naming the reason."""
    if meta.get("kind") != "ann":
        raise SnnkdError(f"{where} holds an SNN; convert takes an ANN teacher from 'snnkd pretrain'")
    pool = next((name for name, m in ann.named_modules() if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d))),
                None)
    if pool is not None:
        raise SnnkdError(f"{where}: layer {pool!r} is max pooling, which this conversion does not support "
                         "(max over spikes is not max over rates)")
    if not activation_sites(ann):
        raise SnnkdError(f"{where}: the model has no ReLU to turn into a neuron")


@torch.no_grad()
def record_scales(ann: StagedNet, batches: Iterable[torch.Tensor], percentile: float = 99.9,
                  max_values: int = MAX_VALUES, seed: int = 0) -> dict[str, float]:
    """``lambda_l`` per activation site: the ``percentile`` of the non-zero activations the
    ANN produces there on ``batches`` (image tensors); 1.0 where a site never activates."""
    if not 0.0 < percentile <= 100.0:
        raise SnnkdError(f"--percentile must lie in (0, 100], got {percentile}")
    batches = list(batches)
    sites = activation_sites(ann)
    modules = dict(ann.named_modules())
    kept: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    per_batch = max(max_values // max(len(batches), 1), 1)
    gen = torch.Generator().manual_seed(seed)

    def hook(name: str):
        def record(_mod, _inp, out: torch.Tensor) -> None:
            values = out.detach().float().flatten()
            values = values[values > 0].cpu()
            if values.numel() > per_batch:
                values = values[torch.randperm(values.numel(), generator=gen)[:per_batch]]
            kept[name].append(values)
        return record

    handles = [modules[s].register_forward_hook(hook(s)) for s in sites]
    was_training = ann.training
    ann.eval()
    try:
        for x in batches:
            ann(x)
    finally:
        for h in handles:
            h.remove()
        ann.train(was_training)
    scales = {}
    for s in sites:
        values = torch.cat(kept[s]) if kept[s] else torch.empty(0)
        scales[s] = float(np.percentile(values.numpy(), percentile)) if values.numel() else 1.0
    return scales


def build_converted(meta: dict) -> StagedNet:
    """The SNN of ``meta["arch"]`` with a :class:`ScaledIF` at every activation site (scales 1
    until weights are loaded), at ``meta["T"]`` steps, direct encoding."""
    from functools import partial

    from snnkd.data import dataset_info
    from snnkd.encoding import make_encoder
    from snnkd.models.registry import MODELS

    neuron = NeuronConfig(**meta["neuron"]) if meta.get("neuron") else NEURON
    model = MODELS[meta["arch"]](act_layer=partial(ScaledIF, neuron), num_classes=meta["num_classes"],
                                 in_chans=meta["in_chans"], img_size=meta["img_size"])
    model.arch, model.in_chans, model.img_size = meta["arch"], meta["in_chans"], meta["img_size"]
    model.set_T(meta["T"])
    info = dataset_info(meta["dataset"])
    return model.set_encoder(make_encoder(meta["encoding"], info.mean, info.std))


def convert(ann: StagedNet, ann_meta: dict, scales: dict[str, float], T: int) -> tuple[StagedNet, dict]:
    """The converted SNN (the ANN's weights, the given scales) and its metadata, without the
    ``conversion`` record the caller adds."""
    meta = {**{k: ann_meta[k] for k in ("arch", "num_classes", "in_chans", "img_size", "dataset")},
            "kind": "snn", "neuron": NEURON.to_dict(), "T": int(T), "encoding": "direct",
            "method": "convert", "trainer": None}
    snn = build_converted(meta)
    missing, unexpected = snn.load_state_dict(ann.state_dict(), strict=False)
    sites = activation_sites(snn)
    if unexpected or sorted(missing) != sorted(f"{s}.scale" for s in sites) or sorted(scales) != sorted(sites):
        raise SnnkdError(f"the ANN's layers do not map onto the SNN of {meta['arch']!r} "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    modules = dict(snn.named_modules())
    for s in sites:
        modules[s].scale.fill_(scales[s])
    snn.eval()
    return snn, meta


def check_conversion_meta(meta: dict, where: str) -> None:
    """A converted checkpoint's metadata: the ``conversion`` record's fields and types, and the
    neuron, encoding and method the conversion defines."""
    conv = meta["conversion"]
    bad = f"{where}: invalid conversion record:"
    if not isinstance(conv, dict):
        raise SnnkdError(f"{bad} expected a mapping, not {type(conv).__name__}")
    unknown = sorted(set(conv) - set(CONVERSION_KEYS))
    missing = sorted(set(CONVERSION_KEYS) - set(conv) - {"teacher_accuracy"})
    if unknown or missing:
        raise SnnkdError(f"{bad} unknown fields {unknown}, missing fields {missing}")
    for k, typ in CONVERSION_KEYS.items():
        v = conv.get(k)
        if v is None and k == "teacher_accuracy":
            continue
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) if typ is float \
            else (isinstance(v, int) and not isinstance(v, bool) and v >= 1) if typ is int else isinstance(v, str)
        if not ok:
            raise SnnkdError(f"{bad} {k} must be {'a positive integer' if typ is int else typ.__name__}, "
                             f"not {v!r:.60}")
    if conv["method"] != METHOD:
        raise SnnkdError(f"{bad} unknown method {conv['method']!r:.60} (this snnkd converts by {METHOD!r})")
    if not 0.0 < conv["percentile"] <= 100.0:
        raise SnnkdError(f"{bad} percentile must lie in (0, 100], not {conv['percentile']!r}")
    if meta.get("kind") != "snn" or meta.get("neuron") != NEURON.to_dict() or meta.get("encoding") != "direct":
        raise SnnkdError(f"{bad} a converted model is an SNN of IF neurons (threshold 1, soft reset) with "
                         f"direct encoding; this one says kind {meta.get('kind')!r:.20}, "
                         f"neuron {meta.get('neuron')!r:.120}, encoding {meta.get('encoding')!r:.20}")


def check_scales(model: StagedNet, where: str) -> None:
    """Every site's ``lambda`` is a finite number > 0."""
    for name, m in model.named_modules():
        if isinstance(m, ScaledIF):
            v = float(m.scale)
            if not (math.isfinite(v) and v > 0):
                raise SnnkdError(f"{where}: conversion scale {name}.scale must be a finite number > 0, not {v}")


def refuse_export(meta: dict, where: str, target: str) -> None:
    """One line for an export of a converted model (soft reset with graded, scaled spikes is
    not expressed by our NIR, ONNX or Loihi exporters)."""
    if meta.get("conversion") is not None:
        raise SnnkdError(f"{where} is an ANN-to-SNN conversion (IF neurons between scalers lambda, graded "
                         f"spikes, soft reset): {target} export does not express it; export a distilled "
                         "student instead")
