"""The exported Loihi network on the whole test set, through the bit-exact integer emulator.

Lava's CPU simulation of Loihi takes about a second per sample, so ``snnkd export --to lava``
runs Lava itself on a subset (default 100 test samples) and proves there that Lava equals
:func:`snnkd.export.loihi.quant.emulate` bit for bit.  The emulator then stands in for the
chip on every test sample: its accuracy, the PyTorch SNN's accuracy on the same samples, the
gap between them, the prediction agreement and the spike agreement per layer.  A layer that
disagrees most with PyTorch is where quantisation loses accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from snnkd.export import nir_check as nc
from snnkd.export.loihi import quant as lq
from snnkd.models.base import StagedNet


@torch.no_grad()
def whole_set_report(model: StagedNet, net: lq.LoihiNet, x: torch.Tensor, y: torch.Tensor, seed: int = 0,
                     batch: int = 200, batches: Callable[[range], Iterable[int]] = iter) -> dict:
    """Emulator vs PyTorch on every sample of ``x`` (un-encoded images) with labels ``y``:

        accuracy_emulator = mean_i [argmax z_emu,i = y_i]      (z_emu from the output membrane)
        accuracy_torch    = mean_i [argmax z_torch,i = y_i]
        gap_pp            = 100 (accuracy_emulator - accuracy_torch)
        agreement_l       = mean over (t, i, neuron) of [s_emu,l = s_torch,l]

    The encoding is seeded once with ``seed`` and drawn batch by batch in order, as the
    Lava comparison draws it for its subset.  ``batches`` wraps the range of batch starts
    (the command line passes a progress bar)."""
    torch.manual_seed(seed)
    names = [lay.name for lay in net.layers[:-1]]
    acc = nc.Agreement()  # the same per-batch accumulation as the NIR readers' check
    for i in batches(range(0, len(x), batch)):
        x_seq = model.encoder(x[i:i + batch], net.T)
        ref_y, ref_s = nc.run_reference(model, x_seq)
        emu = lq.emulate(net, x_seq)
        spikes_ref = {n: ref_s[nc.spike_key(n)] for n in names}
        spikes_emu = {n: emu[n].to(spikes_ref[n].dtype) for n in names}
        # The chip's prediction is the output membrane after the last step: one "step" of logits.
        logits_emu = lq.logits_from_output(net, emu["v:output"][-1])[None]
        acc.add((ref_y, spikes_ref), (logits_emu, spikes_emu), y[i:i + batch])
    r = acc.result()
    per_layer = r["spike_agreement_per_layer"]
    return {"samples": acc.samples, "accuracy_emulator": r["accuracy"], "accuracy_torch": r["accuracy_reference"],
            "gap_pp": 100 * (r["accuracy"] - r["accuracy_reference"]),
            "prediction_agreement": r["prediction_agreement"], "spike_agreement_per_layer": per_layer,
            "weakest_layer": min(per_layer, key=per_layer.get) if per_layer else None}
