"""Every registered architecture either maps onto Loihi (NIR graph -> Loihi layer graph ->
fixed-point quantisation -> one emulated step) or is refused with one error naming the layer
and the reason (issue 15).  Small random-weight SNNs on 16x16 inputs: what is checked is the
structure, which does not depend on training.  The Lava runs themselves are in
tests/test_export_lava.py and tests/test_loihi_pooling.py."""

from __future__ import annotations

import re

import pytest
import torch

from snnkd.errors import SnnkdError
from snnkd.export.loihi import quant as lq
from snnkd.export.nir_export import to_nir
from snnkd.models import list_models
from snnkd.neurons import NeuronConfig
from snnkd.runtime import build

# Refused today, and why: max pooling has no NIR node and no Loihi stage; a pre-activation
# block puts a BatchNorm after a residual sum, where no convolution is left to fold it into.
REFUSED = {"resnet18_imagenet": "MaxPool2d", "sew_resnet18": "MaxPool2d", "preresnet20": "BatchNorm"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("arch", list_models())
@pytest.mark.parametrize("kind", ["if", "lif"])
def test_every_architecture_maps_onto_loihi_or_is_refused_by_layer(arch: str, kind: str) -> None:
    torch.manual_seed(0)
    model = build(arch, NeuronConfig(kind=kind, tau=2.0 if kind == "lif" else None), 10, 1, 16, T=2)
    if arch in REFUSED:
        with pytest.raises(SnnkdError, match=REFUSED[arch]) as err:
            lq.from_nir(to_nir(model), 2)
        assert re.search(r"'[\w.]+'", str(err.value)), "the refusal must name the layer"
        assert "\n" not in str(err.value)
        return
    net = lq.from_nir(to_nir(model), 2)
    lq.quantise(net, None)
    emu = lq.emulate(net, torch.rand(2, 1, *net.input_shape))
    assert emu["v:output"].shape == (2, 1, 10)
    assert all(lay.kind == ("out" if lay.name == "output" else kind) for lay in net.layers)
    lif = [lay for lay in net.layers if lay.kind == "lif"]
    assert all(0 < lay.dv < 4096 for lay in lif)  # decay in Loihi's 12-bit format
