"""Model registry: three-line constructors registered by name.

``create_model(name, neuron=None, ...)`` builds the ANN (ReLU) when ``neuron`` is None and
the SNN (spiking neurons with that config) otherwise, from the same definition.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from snnkd.models.base import ActFactory, StagedNet
from snnkd.neurons import NeuronConfig, SpikingNeuron
from snnkd.registry import Registry

Constructor = Callable[..., StagedNet]
MODELS: Registry[Constructor] = Registry("model", group="snnkd.models", builtins=("snnkd.models",))


def register_model(fn: Constructor) -> Constructor:
    """Decorator: register ``fn(act_layer, num_classes, in_chans, img_size)`` under its name."""
    return MODELS.register()(fn)


def list_models() -> list[str]:
    return MODELS.names()


def act_factory(neuron: NeuronConfig | None) -> ActFactory:
    """The seam: ReLU for an ANN, a spiking neuron for an SNN."""
    if neuron is None:
        return partial(nn.ReLU, inplace=False)
    return partial(SpikingNeuron, neuron)


def create_model(
    name: str,
    neuron: NeuronConfig | None = None,
    num_classes: int = 10,
    in_chans: int = 3,
    img_size: int = 32,
    T: int = 1,
) -> StagedNet:
    """Build a registered model; ``neuron`` None -> ANN, else SNN with ``T`` steps."""
    model = MODELS[name](act_layer=act_factory(neuron), num_classes=num_classes,
                          in_chans=in_chans, img_size=img_size)
    model.arch, model.in_chans, model.img_size = name, in_chans, img_size
    if neuron is not None:
        model.set_T(T)
    return model
