"""An inference copy of a trained model, in the form every exporter starts from.

* BatchNorm folded into the preceding conv or linear layer (eval statistics):
  ``y = gamma (W x + b - mu) / sqrt(var + eps) + beta``  becomes  ``y = W' x + b'`` with
  ``W' = W * g``, ``b' = (b - mu) * g + beta``, ``g = gamma / sqrt(var + eps)`` per output channel.
* ``nn.Identity`` replaced by :class:`Passthrough` (traced through by torch.fx, so a
  residual shortcut becomes a plain edge into the addition).
* Global average pooling (``AdaptiveAvgPool2d(1)``) replaced by ``AvgPool2d`` with the
  kernel and stride equal to the feature-map size, which NIR and Lava express.
* :class:`StepNet`: one time step per call, ``x_t -> stem -> stages -> head`` (logits of
  that step); neurons keep their membrane between calls (``T = 1``) until
  :func:`snnkd.neurons.reset_net`.  The model's output over ``T`` steps is the mean of the
  per-step logits.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from snnkd.errors import SnnkdError
from snnkd.models.base import StagedNet
from snnkd.neurons import reset_net


class Passthrough(nn.Module):
    """``y = x``; defined outside ``torch.nn`` so that torch.fx traces through it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@torch.no_grad()
def fold_bn(layer: nn.Module, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> nn.Module:
    """Return a copy of ``layer`` (Conv2d or Linear) with ``bn`` folded in (see module doc)."""
    g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = copy.deepcopy(layer)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    folded.weight.copy_(layer.weight * g.reshape(shape))
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    folded.bias = nn.Parameter((b - bn.running_mean) * g + bn.bias)
    return folded


def _fold_sequential(seq: nn.Sequential) -> None:
    keys = list(seq._modules.keys())
    for i, k in enumerate(keys):
        m = seq._modules[k]
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            prev = seq._modules[keys[i - 1]] if i > 0 else None
            if not isinstance(prev, (nn.Conv2d, nn.Linear)):
                raise SnnkdError("cannot fold a BatchNorm that does not follow a conv or linear layer")
            seq._modules[keys[i - 1]] = fold_bn(prev, m)
            seq._modules[k] = Passthrough()


def _replace(module: nn.Module, feature_hw: dict[int, tuple[int, int]]) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Identity):
            setattr(module, name, Passthrough())
        elif isinstance(child, nn.AdaptiveAvgPool2d):
            if child.output_size not in (1, (1, 1)):
                raise SnnkdError(f"only global average pooling can be exported, got {child}")
            h, w = feature_hw[id(child)]
            setattr(module, name, nn.AvgPool2d((h, w), (h, w)))
        elif isinstance(child, (nn.BatchNorm2d, nn.BatchNorm1d)) and not isinstance(module, nn.Sequential):
            raise SnnkdError(f"BatchNorm {name!r} outside a Sequential cannot be folded")
        else:
            if isinstance(child, nn.Sequential):
                _fold_sequential(child)
            _replace(child, feature_hw)


class StepNet(nn.Module):
    """One time step of a :class:`StagedNet`: ``x_t [B, C, H, W] -> logits_t [B, K]``."""

    def __init__(self, model: StagedNet) -> None:
        super().__init__()
        self.stem, self.stages = model.stem, model.stages
        self.pool, self.flatten = model.head.pool, model.head.flatten
        self.pre, self.fc = model.head.pre, model.head.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.stem(x)
        for stage in self.stages.values():
            z = stage(z)
        return self.fc(self.pre(self.flatten(self.pool(z))))


def input_shape(model: StagedNet) -> tuple[int, int, int]:
    return (int(model.in_chans), int(model.img_size), int(model.img_size))


@torch.no_grad()
def deploy_copy(model: StagedNet) -> StagedNet:
    """A folded, fx-traceable copy of ``model`` (the original is untouched)."""
    m = copy.deepcopy(model).eval()
    # record the input size of every global pooling layer with one dummy forward
    hw: dict[int, tuple[int, int]] = {}
    hooks = [mod.register_forward_hook(lambda mod, inp, out: hw.__setitem__(id(mod), tuple(inp[0].shape[-2:])))
             for mod in m.modules() if isinstance(mod, nn.AdaptiveAvgPool2d)]
    m(torch.zeros(1, *input_shape(m)))
    for h in hooks:
        h.remove()
    if isinstance(m.stem, nn.Sequential):
        _fold_sequential(m.stem)
    _replace(m, hw)
    if any(isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)) for mod in m.modules()):
        raise SnnkdError("a BatchNorm layer could not be folded")
    reset_net(m)
    return m


def step_net(model: StagedNet) -> StepNet:
    """:class:`StepNet` of a deploy copy, neurons set to one step per call."""
    return StepNet(deploy_copy(model).set_T(1)).eval()


@torch.no_grad()
def record_shapes(net: nn.Module, shape: tuple[int, ...]) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """``id(module) -> (input shape, output shape)`` without the batch axis, for every leaf."""
    shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = []
    for mod in net.modules():
        if not list(mod.children()):
            hooks.append(mod.register_forward_hook(
                lambda mod, inp, out: shapes.__setitem__(id(mod), (tuple(inp[0].shape[1:]), tuple(out.shape[1:])))))
    reset_net(net)
    net(torch.zeros(1, *shape))
    reset_net(net)
    for h in hooks:
        h.remove()
    return shapes
