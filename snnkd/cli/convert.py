"""``snnkd convert``: an ANN teacher turned into an SNN by data-based conversion (:mod:`snnkd.convert`).

Writes ``OUT/model.pt`` (loadable by ``snnkd evaluate``; the scales are buffers of the
state dict, the conversion record is ``meta["conversion"]``) and ``OUT/config.yaml``.  One
checkpoint per ``--T``: calibration takes seconds, so each T is its own conversion.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from snnkd import io
from snnkd.cli.common import (
    add_config_option,
    add_model_data_options,
    add_seed_option,
    positive_float,
    positive_int,
    resolved,
)
from snnkd.cli.formatting import examples
from snnkd.errors import SnnkdError
from snnkd.paths import check_paths


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="ANN-to-SNN conversion of a teacher (robust percentile normalisation)",
                       description="Record the ANN's activations on training batches, take each activation "
                                   "site's percentile as its scale lambda (Rueckauer et al. 2017) and build the "
                                   "SNN of the same architecture with IF neurons (threshold 1, soft reset) "
                                   "between the scalers 1/lambda and lambda. Writes OUT/model.pt and "
                                   "OUT/config.yaml.",
                       epilog=examples("snnkd convert --teacher runs/teacher/model.pt --T 32 --out runs/converted_T32"))
    add_config_option(p)
    p.add_argument("--teacher", type=Path, default=None, help="ANN model.pt from 'snnkd pretrain'")
    p.add_argument("--out", type=Path, default=None, help="output directory")
    p.add_argument("--T", type=positive_int, default=32, help="time steps of the converted SNN")
    p.add_argument("--calib-batches", type=positive_int, default=10,
                   help="training batches whose activations give the scales")
    p.add_argument("--batch-size", type=positive_int, default=64, help="calibration batch size")
    p.add_argument("--percentile", type=positive_float, default=99.9,
                   help="percentile of the non-zero activations taken as each site's scale (0, 100]")
    add_model_data_options(p)
    add_seed_option(p, "seed of the calibration samples")
    p.set_defaults(func=run, subparser=p)


def run(a: argparse.Namespace) -> int:
    if not a.teacher or not a.out:
        raise SnnkdError("convert needs --teacher and --out")
    if a.percentile > 100:
        raise SnnkdError(f"argument --percentile: must lie in (0, 100], got {a.percentile:g}")
    out = Path(a.out)
    check_paths(inputs={"--teacher": a.teacher, "--config": a.config}, trees={"--data-root": a.data_root},
                out_dirs={"--out": out}, outputs={"--out model": out / "model.pt",
                                                  "config record": out / "config.yaml"})
    from snnkd.cli.inputs import model_inputs
    from snnkd.convert import METHOD, check_convertible, convert, record_scales
    from snnkd.runtime import load_model, save_model

    ann, tmeta = load_model(a.teacher)
    check_convertible(ann, tmeta, str(a.teacher))
    x, _ = model_inputs(tmeta, a.data_root, "calibration", a.calib_batches * a.batch_size, a.download, a.seed)
    scales = record_scales(ann, x.split(a.batch_size), a.percentile, seed=a.seed)
    snn, meta = convert(ann, tmeta, scales, a.T)
    acc = tmeta.get("test_acc")
    meta["conversion"] = {"method": METHOD, "percentile": float(a.percentile),
                          "calib_batches": len(x.split(a.batch_size)), "calib_samples": int(len(x)),
                          "teacher": str(a.teacher),
                          "teacher_accuracy": float(acc) if isinstance(acc, (int, float)) else None}
    save_model(out / "model.pt", snn, meta)
    io.write_yaml(out / "config.yaml", resolved(a))
    print(f"converted {tmeta['arch']} at T={a.T}: {len(scales)} sites, lambda "
          f"{min(scales.values()):.3g}..{max(scales.values()):.3g} -> {out / 'model.pt'}")
    return 0
