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
    hits_emu = hits_torch = same = 0
    equal = {lay.name: 0.0 for lay in net.layers[:-1]}
    total = {lay.name: 0 for lay in net.layers[:-1]}
    for i in batches(range(0, len(x), batch)):
        xb, yb = x[i:i + batch], y[i:i + batch]
        x_seq = model.encoder(xb, net.T)
        ref_y, ref_s = nc.run_reference(model, x_seq)
        emu = lq.emulate(net, x_seq)
        z_emu = lq.logits_from_output(net, emu["v:output"][-1]).argmax(1)
        z_ref = ref_y.mean(0).argmax(1)
        hits_emu += int((z_emu == yb).sum())
        hits_torch += int((z_ref == yb).sum())
        same += int((z_emu == z_ref).sum())
        for name in equal:
            r = ref_s[nc.spike_key(name)]
            equal[name] += float((emu[name].to(r.dtype) == r).sum())
            total[name] += r.numel()
    n = len(x)
    per_layer = {k: equal[k] / max(total[k], 1) for k in equal}
    acc_emu, acc_torch = hits_emu / n, hits_torch / n
    return {"samples": n, "accuracy_emulator": acc_emu, "accuracy_torch": acc_torch,
            "gap_pp": 100 * (acc_emu - acc_torch), "prediction_agreement": same / n,
            "spike_agreement_per_layer": per_layer,
            "weakest_layer": min(per_layer, key=per_layer.get) if per_layer else None}
