"""snnkd's SynOps (snnkd.ops.count_ops, priced by snnkd/energy.py) against spikingjelly
2.0's own op counter, ``spikingjelly.activation_based.op_counter.SynOpCounter`` run under
its ``DispatchCounterMode`` on the same trained digits students and inputs.

Agreement: every ``Conv2d`` / ``Linear`` fed by binary spikes (including the flattened
spikes of the VGG head and the ResNet shortcut) has the same SynOps, exact at borders and
strides; the first layer (real-valued input) has none in either (snnkd prices it as MACs).

Known difference, the **pooled-spike head**: ResNet's ``GAP -> fc`` sees the average of
spikes, which is not a 0/1 tensor, so spikingjelly counts no SynOps there; snnkd turns the
pooled input back into spike counts (``c = area * p``, the ``1/area`` folded into the
weights) and counts ``sum_i c_i * K`` accumulates, i.e. ``K`` times the last spiking
layer's spikes.
"""

from __future__ import annotations

import pytest
import torch
from export_models import trained

from snnkd.cli.inputs import model_inputs
from snnkd.ops import count_ops
from snnkd.runtime import load_model

pytestmark = pytest.mark.timeout(300)


def sj_synops(model, x: torch.Tensor) -> dict[str, float]:
    """spikingjelly's SynOps per sample for every module scope of ``model`` (keyed as ``named_modules``)."""
    from spikingjelly.activation_based.op_counter import (
        DispatchCounterMode,
        SynOpCounter,
    )

    counter = SynOpCounter()
    model.eval()
    with torch.no_grad(), DispatchCounterMode([counter]):
        model(x)
    prefix = type(model).__name__ + "."
    return {scope[len(prefix):]: sum(ops.values()) / len(x)
            for scope, ops in counter.get_counts().items() if scope.startswith(prefix)}


@pytest.mark.parametrize("arch", ["vgg_tiny", "resnet_tiny"])
def test_synops_match_spikingjelly_op_counter(arch: str) -> None:
    model, meta = load_model(trained(arch))
    x, _ = model_inputs(meta, "data", "test", 16)
    ours = count_ops(model, [(x, None)])
    theirs = sj_synops(model, x)
    kinds = {name: r.input for name, r in ours.layers.items()}
    assert "spikes" in kinds.values() and next(iter(kinds.values())) == "real"
    for name, rec in ours.layers.items():
        sj = theirs.get(name, 0.0)
        if rec.input == "spikes":
            assert rec.synops > 0 and sj == pytest.approx(rec.synops, rel=1e-9), name
        elif rec.input == "real":
            assert rec.synops == 0 and sj == 0 and rec.macs > 0, name
        else:  # the pooled-spike head: spikingjelly sees a non-binary input and counts nothing
            assert sj == 0 and rec.synops > 0, name
    pooled = [name for name, k in kinds.items() if k == "pooled spikes"]
    assert pooled == (["head.fc"] if arch == "resnet_tiny" else [])
    if pooled:
        last = [n for n in ours.firing_rates][-1]  # the spiking layer that feeds the GAP
        spikes = ours.firing_rates[last] * ours.neurons[last]  # spikes per sample = rate x updates
        assert ours.layers["head.fc"].synops == pytest.approx(10 * spikes, rel=1e-6)
    assert sum(theirs.get(n, 0.0) for n in ours.layers) == pytest.approx(
        ours.synops - sum(ours.layers[n].synops for n in pooled), rel=1e-9)
