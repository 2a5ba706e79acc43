"""One model definition for ANN and SNN.

Every architecture is built from an ``act_layer`` factory: ``nn.ReLU`` gives the ANN
teacher, a :class:`~snnkd.neurons.SpikingNeuron` factory gives the SNN student.  That
is the only difference.  Inputs ``[B, C, H, W]`` are encoded to ``[T*B, C, H, W]``
(time folded into the batch, ``T = 1`` for an ANN); stateless layers act on the folded
tensor and neurons unfold it.  Logits are averaged over ``T``.

A network is ``stem -> stages (named) -> head``; ``feature_info`` lists each stage's
channels and reduction (stride relative to the input).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from snnkd.encoding import DirectEncoder, Encoder
from snnkd.neurons import SpikingNeuron, TimeSteps, reset_net

ActFactory = Callable[[], nn.Module]


@dataclass
class StageOutput:
    """What :meth:`StagedNet.forward_stages` returns.

    ``features[name]``: the stage output, ``[T, B, C, H, W]`` for an SNN (spikes per
    time step) and ``[B, C, H, W]`` for an ANN.  ``rates[name]``: its mean over time
    (the firing rate for an SNN; the activation itself for an ANN).
    ``preacts[name]``: the input of the stage's last activation (the feature before
    the ReLU or the neuron), averaged over time, when the stage ends in one.
    ``logits_t``: ``[T, B, K]``; ``logits`` their mean over time.
    """

    logits: torch.Tensor
    logits_t: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    rates: dict[str, torch.Tensor] = field(default_factory=dict)
    preacts: dict[str, torch.Tensor] = field(default_factory=dict)


class ClassifierHead(nn.Module):
    """``pool -> flatten -> [fc -> act] -> fc``.  ``pool`` is global average pooling
    (``gap``), a 2x2 average pool (``pool2``), or nothing (``flatten``, for nets that must
    run on targets without pooling)."""

    def __init__(self, in_features: int, num_classes: int, kind: str = "gap", hidden: int = 0,
                 act_layer: ActFactory | None = None) -> None:
        super().__init__()
        self.kind = kind
        pools = {"gap": nn.AdaptiveAvgPool2d(1), "pool2": nn.AvgPool2d(2), "flatten": nn.Identity()}
        if kind not in pools:
            raise ValueError(f"head kind must be one of {sorted(pools)}, got {kind!r}")
        self.pool = pools[kind]
        self.flatten = nn.Flatten(1)
        if hidden:
            assert act_layer is not None
            self.pre = nn.Sequential(nn.Linear(in_features, hidden), act_layer())
            in_features = hidden
        else:
            self.pre = nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pre(self.flatten(self.pool(x))))


class StagedNet(nn.Module):
    """Base class: subclasses set ``stem``, ``stages`` (``nn.ModuleDict``), ``head`` and
    ``feature_info`` and may override :meth:`last_act`."""

    stem: nn.Module
    stages: nn.ModuleDict
    head: ClassifierHead
    feature_info: list[dict]

    def __init__(self) -> None:
        super().__init__()
        self.encoder: Encoder = DirectEncoder()
        self._steps = TimeSteps(1)  # shared with every neuron; written only by set_T

    # --- time ---------------------------------------------------------------
    @property
    def is_spiking(self) -> bool:
        return any(isinstance(m, SpikingNeuron) for m in self.modules())

    @property
    def T(self) -> int:
        return self._steps.T

    def set_T(self, T: int) -> StagedNet:
        """Set the number of time steps (an ANN stays at 1): the only writer of ``T``.

        The model and all its neurons read one :class:`~snnkd.neurons.TimeSteps`; this
        makes every neuron follow it and sets it."""
        if int(T) != T or T < 1:
            raise ValueError(f"T must be an integer >= 1, got {T}")
        if not self.is_spiking and T != 1:
            raise ValueError("an ANN runs with T = 1")
        for m in self.modules():
            if isinstance(m, SpikingNeuron):
                m.follow(self._steps)
        self._steps.T = int(T)
        return self

    @contextmanager
    def timesteps(self, T: int) -> Iterator[StagedNet]:
        """``with model.timesteps(T):`` runs the block at ``T`` steps and restores the
        previous ``T`` afterwards (also on an exception)."""
        previous = self.T
        self.set_T(T)
        try:
            yield self
        finally:
            self.set_T(previous)

    def set_encoder(self, encoder: Encoder) -> StagedNet:
        self.encoder = encoder
        return self

    @property
    def stage_names(self) -> list[str]:
        return list(self.stages.keys())

    def last_act(self, stage: str) -> nn.Module | None:
        """The activation module whose output is the stage output (None if the stage
        does not end in one, e.g. pre-activation blocks)."""
        mods = [m for m in self.stages[stage].modules() if isinstance(m, (nn.ReLU, SpikingNeuron))]
        return mods[-1] if mods else None

    # --- forward ------------------------------------------------------------
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        reset_net(self)
        z = self.encoder(x, self.T)  # [T, B, ...]
        return z.flatten(0, 1)

    def _unfold(self, z: torch.Tensor) -> torch.Tensor:
        T = self.T
        return z.reshape(T, z.shape[0] // T, *z.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` -> logits ``[B, K]`` (mean over time)."""
        z = self.stem(self._encode(x))
        for stage in self.stages.values():
            z = stage(z)
        return self._unfold(self.head(z)).mean(0)

    def forward_stages(self, x: torch.Tensor, preacts: bool = False) -> StageOutput:
        """Logits plus every named stage's features (per time step for an SNN) and rates."""
        captured: dict[str, torch.Tensor] = {}
        handles = []
        if preacts:
            for name in self.stages:
                act = self.last_act(name)
                if act is not None:
                    handles.append(act.register_forward_hook(
                        lambda m, inp, out, n=name: captured.__setitem__(n, inp[0])))
        try:
            z = self.stem(self._encode(x))
            feats: dict[str, torch.Tensor] = {}
            for name, stage in self.stages.items():
                z = stage(z)
                feats[name] = z
            logits_t = self._unfold(self.head(z))
        finally:
            for h in handles:
                h.remove()
        out = StageOutput(logits=logits_t.mean(0), logits_t=logits_t)
        for name, f in feats.items():
            ft = self._unfold(f)
            if self.is_spiking:  # bf16/fp16 spikes (SpikingNeuron) as fp32: rates and KD terms in fp32
                ft = ft.float()
            out.features[name] = ft if self.is_spiking else ft[0]
            out.rates[name] = ft.mean(0)
            if preacts:
                out.preacts[name] = self._unfold(captured[name]).mean(0) if name in captured else ft.mean(0)
        return out

    def forward_from(self, stage: str, z: torch.Tensor) -> torch.Tensor:
        """Run the stages after ``stage`` and the head on ``z`` (folded ``[T*B, ...]``);
        returns logits ``[B, K]`` averaged over this model's ``T``."""
        names = self.stage_names
        if stage not in names:
            raise KeyError(f"no stage {stage!r}; stages are {names}")
        for name in names[names.index(stage) + 1:]:
            z = self.stages[name](z)
        return self._unfold(self.head(z)).mean(0)

    def stage_info(self, name: str) -> dict:
        for info in self.feature_info:
            if info["name"] == name:
                return info
        raise KeyError(f"no stage {name!r}; stages are {self.stage_names}")
