"""``snnkd export``: a trained SNN to NIR, ONNX or a Loihi network run in Lava.

Every target writes its artefact atomically and a ``--report`` JSON with the figures
that verify it against the PyTorch model on the dataset's test inputs (read here, by
:func:`snnkd.cli.inputs.model_inputs`; the exporters take tensors).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snnkd import io
from snnkd.cli import progress
from snnkd.cli.common import (
    add_config_option,
    add_model_data_options,
    add_seed_option,
    positive_float,
    positive_int,
    resolved,
)
from snnkd.cli.formatting import examples
from snnkd.cli.inputs import model_inputs
from snnkd.errors import SnnkdError
from snnkd.paths import check_paths
from snnkd.runtime import load_model

TARGETS = ("nir", "onnx", "lava")


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model to NIR, ONNX or Loihi (Lava) and verify it",
                       description="Export a model.pt and check the export on test inputs. "
                                   "nir: a NIR graph (nirtorch), read back with nir.read, re-imported with "
                                   "nirtorch and (if installed) spikingjelly, compared with the PyTorch SNN. "
                                   "onnx: the ANN, or the SNN unrolled over T, checked with onnxruntime. "
                                   "lava: Loihi fixed-point network (netx HDF5 for sequential nets, a Lava "
                                   "process graph otherwise) run in Loihi2SimCfg(select_tag='fixed_pt').",
                       epilog=examples("snnkd export --model runs/logit/model.pt --to nir --out runs/logit/model.nir",
                                       "snnkd export --model runs/logit/model.pt --to onnx --out runs/logit/model.onnx",
                                       "snnkd export --model runs/logit/model.pt --to lava --limit-test 100 "
                                       "--out runs/logit/lava"))
    add_config_option(p, "YAML file of option values")
    p.add_argument("--model", type=Path, default=None, help="model.pt from distill (or pretrain, for onnx)")
    p.add_argument("--to", choices=TARGETS, default=None, help="target format")
    p.add_argument("--out", type=Path, default=None, help="output file (nir, onnx) or directory (lava)")
    p.add_argument("--report", type=Path, default=None, help="verification report JSON (default: OUT + .json)")
    add_model_data_options(p, limit_test="verify on a fixed subset of this many test samples "
                                          "(default: all; lava: 100)")
    p.add_argument("--dt", type=positive_float, default=1e-4, help="nir: seconds per time step in the graph")
    p.add_argument("--no-third-party", action="store_true", help="nir: skip the spikingjelly re-import")
    p.add_argument("--atol", type=positive_float, default=1e-4, help="onnx: tolerance on |onnxruntime - torch|")
    p.add_argument("--calibrate", type=int, default=0, metavar="N",
                   help="lava: choose each layer's quantisation scale on N training samples (0: max-abs scaling)")
    p.add_argument("--nir", type=Path, default=None, help="lava: build from this exported .nir (default: export anew)")
    p.add_argument("--netx", type=Path, default=None,
                   help="lava: run this netx HDF5 written by an earlier export (network.json beside it)")
    p.add_argument("--timeout", type=positive_int, default=600, help="lava: seconds before the Lava run is stopped")
    p.add_argument("--no-whole-test-set", action="store_true",
                   help="lava: skip the bit-exact emulator run on every test sample (Lava runs on --limit-test)")
    add_seed_option(p)
    progress.add_progress_option(p)
    p.set_defaults(func=run, subparser=p)


def run(a: argparse.Namespace) -> int:
    """Export with a bar over the steps (model, inputs, export and check, report) on a terminal."""
    lava = a.to == "lava"
    total = 4 + (0 if a.netx or not lava else 1) + (1 if lava and not a.no_whole_test_set else 0)
    with progress.Steps(total, "export", progress.enabled(a)) as steps:
        return export(a, steps)


def _batch_bar(a: argparse.Namespace, what: str):
    """A bar with an ETA over the batches of a per-sample check (on a terminal only)."""
    return lambda starts: progress.bar(starts, what, progress.enabled(a), total=len(starts), unit="batch")


def export(a: argparse.Namespace, steps: progress.Steps) -> int:
    if not a.model or not a.to or not a.out:
        raise SnnkdError("export needs --model, --to and --out")
    report_path = a.report or Path(str(a.out) + ".json")
    lava = a.to == "lava"  # OUT is a directory that replaces what is there: only an earlier export
    check_paths(inputs={"--model": a.model, "--nir": a.nir, "--netx": a.netx, "--config": a.config},
                trees={"--data-root": a.data_root}, fresh_dirs={"--out": a.out} if lava else None,
                outputs={"--out": None if lava else a.out, "--report": report_path})  # items 1, 2, 10
    steps.next("export: loading the model")
    model, meta = load_model(a.model)
    from snnkd.convert import refuse_export
    refuse_export(meta, str(a.model), a.to)  # a converted model: one line, before any data is read
    steps.next("export: reading the test inputs")
    x, y = model_inputs(meta, a.data_root, "test", a.limit_test or (100 if lava else None), a.download)
    if a.to != "lava":
        steps.next(f"export: writing and checking {a.to}")
    if a.to == "nir":
        from snnkd.export.nir_pipeline import export_nir
        report = export_nir(model, meta, a.out, x, y, dt=a.dt, third_party=not a.no_third_party, seed=a.seed,
                            batches=_batch_bar(a, "export: checking nir"))
        nt = report["nirtorch"]
        summary = f"nirtorch spike agreement {nt['spike_agreement']:.6f}"
        if "spike_agreement" in report.get("spikingjelly", {}):
            summary += f", spikingjelly {report['spikingjelly']['spike_agreement']:.6f}"
    elif a.to == "onnx":
        from snnkd.export.onnx_export import export_onnx
        report = export_onnx(model, meta, a.out, x, y, atol=a.atol, seed=a.seed)
        summary = f"onnxruntime max |error| {report['max_abs_error']:.3g} (tolerance {a.atol:g})"
    else:
        from snnkd.export.loihi.pipeline import CALIBRATION_SAMPLES, export_lava
        if not a.netx:
            steps.next("export: reading the calibration inputs")
        calib = None if a.netx else model_inputs(meta, a.data_root, "calibration", max(a.calibrate, CALIBRATION_SAMPLES),
                                                 a.download, a.seed)[0]
        if not a.no_whole_test_set:
            steps.next("export: reading every test input")
        whole = None if a.no_whole_test_set else model_inputs(meta, a.data_root, "test", None, a.download)
        steps.next("export: building and running the Lava network")
        report = export_lava(model, meta, a.out, x, y, calib, calibrate=a.calibrate, timeout=a.timeout,
                             nir_path=a.nir, netx_path=a.netx, seed=a.seed, whole_set=whole,
                             batches=_batch_bar(a, "export: emulator on every test sample"))
        summary = (f"Lava accuracy {100 * report['accuracy_lava']:.2f}% vs PyTorch "
                   f"{100 * report['accuracy_torch']:.2f}% on {report['test_samples']} samples")
        if "whole_test_set" in report:
            w = report["whole_test_set"]
            summary += (f"; emulator {100 * w['accuracy_emulator']:.2f}% vs PyTorch {100 * w['accuracy_torch']:.2f}% "
                        f"on all {w['samples']} test samples")
    report = {"model": str(a.model), "arch": meta["arch"], "kind": meta["kind"], **report, "options": resolved(a)}
    steps.next("export: writing the report")
    io.write_json(report_path, report)
    print(f"export {a.to}: {a.out}; {summary} -> {report_path}")
    if report.get("within_tolerance") is False:
        print(f"snnkd: error: onnxruntime differs from PyTorch by more than {a.atol:g} "
              f"(on {report.get('samples_differing', '?')} of {report.get('test_samples', '?')} samples)",
              file=sys.stderr)
        return 1
    return 0
