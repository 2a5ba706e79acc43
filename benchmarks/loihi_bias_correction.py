"""Does empirical bias correction bring the Loihi emulator closer to PyTorch?

For one trained SNN checkpoint: build the Loihi network as ``snnkd export --to lava`` does
(NIR graph, input bits chosen on calibration images from the training set), quantise it with
and without :func:`snnkd.export.loihi.quant.weight_error` subtracted from the biases, and
run the bit-exact emulator on the whole test set.  Prints, per variant, the emulator's
accuracy, PyTorch's, the gap, the prediction agreement and the per-layer spike agreement.

    .venv/bin/python benchmarks/loihi_bias_correction.py results/.../model.pt [--data-root data]

Lava itself is not run here: it equals the emulator bit for bit (tests/test_export_lava.py).
"""

from __future__ import annotations

import argparse

import torch

from snnkd.cli.inputs import model_inputs
from snnkd.export.loihi import quant as lq
from snnkd.export.loihi.pipeline import CALIBRATION_SAMPLES
from snnkd.export.loihi.whole_set import whole_set_report
from snnkd.export.nir_export import to_nir
from snnkd.runtime import load_model


def checkpoint_and_inputs(doc: str, limit_test: int | None):
    """The command line of the Loihi export benchmarks (a checkpoint, ``--data-root``,
    ``--limit-test``): the model in eval mode, its metadata, the calibration images the
    export uses (training data) and the test images with labels."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--data-root", default="data")
    p.add_argument("--limit-test", type=int, default=limit_test,
                   help=f"test samples (default: {limit_test or 'all'})")
    a = p.parse_args()
    torch.set_grad_enabled(False)
    model, meta = load_model(a.model)
    model.eval()
    calib_x, _ = model_inputs(meta, a.data_root, "calibration", CALIBRATION_SAMPLES)
    x, y = model_inputs(meta, a.data_root, "test", a.limit_test)
    return model, meta, calib_x, x, y


def main() -> None:
    model, meta, calib_x, x, y = checkpoint_and_inputs(__doc__, None)
    for corr in (False, True):
        net = lq.from_nir(to_nir(model, meta), model.T)
        torch.manual_seed(0)
        calib = model.encoder(calib_x, model.T)
        q, _ = lq.choose_input_bits(net, calib)
        lq.quantise(net, calib, q, bias_correction=corr)
        r = whole_set_report(model, net, x, y)
        layers = " ".join(f"{n} {100 * v:.2f}" for n, v in r["spike_agreement_per_layer"].items())
        print(f"{'bias correction' if corr else 'plain':16s} q={q} samples {r['samples']} "
              f"emulator {100 * r['accuracy_emulator']:.2f} % torch {100 * r['accuracy_torch']:.2f} % "
              f"gap {r['gap_pp']:+.2f} pp prediction agreement {100 * r['prediction_agreement']:.2f} %\n"
              f"  spike agreement per layer (%): {layers}", flush=True)


if __name__ == "__main__":
    main()
