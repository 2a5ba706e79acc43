"""``snnkd energy``: per-layer SynOps, MACs, synaptic events and neuron updates counted on
the exported NIR graph, checked against the PyTorch-side counts, and energy per target
(45 nm digital baseline, Loihi) for the SNN, the same architecture as an ANN, and the teacher."""

from __future__ import annotations

import argparse
from pathlib import Path

from snnkd import io
from snnkd.cli.common import positive_int, resolved
from snnkd.cli.formatting import examples
from snnkd.errors import SnnkdError
from snnkd.paths import check_paths
from snnkd.runtime import load_model


def add_parser(sub) -> None:
    p = sub.add_parser("energy", help="operation counts on the exported graph and energy per target",
                       description="Run the model's NIR graph (exported now, or --nir FILE) on test inputs, count "
                                   "per-layer SynOps, MACs, synaptic events and neuron updates, compare them with "
                                   "snnkd's PyTorch-side counts, and price them with the per-target energies of "
                                   "snnkd/resources/energy.yaml. Writes --out JSON and a Markdown --table.",
                       epilog=examples("snnkd energy --model runs/logit/model.pt --teacher runs/teacher/model.pt "
                                       "--out runs/logit/energy.json"))
    p.add_argument("--config", type=Path, help="YAML file of option values")
    p.add_argument("--model", type=Path, default=None, help="SNN model.pt from distill")
    p.add_argument("--nir", type=Path, default=None, help="count on this exported .nir instead of exporting anew")
    p.add_argument("--teacher", type=Path, default=None, help="ANN teacher model.pt, priced on the same figures")
    p.add_argument("--out", type=Path, default=None, help="energy JSON")
    p.add_argument("--table", type=Path, default=None, help="Markdown table (default: OUT with .md)")
    p.add_argument("--data-root", type=Path, default=Path("data"), help="where datasets live")
    p.add_argument("--download", action="store_true", help="download the dataset if absent")
    # the sample options of `snnkd evaluate`, with its defaults: both commands then count the
    # same samples (the first BATCH_SIZE * OPS_BATCHES of the fixed test subset), so eval.json,
    # the summary and energy.md give one energy for one model
    p.add_argument("--limit-test", type=positive_int, default=None, help="fixed test subset (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="as in snnkd evaluate (default: 256)")
    p.add_argument("--ops-batches", type=positive_int, default=4,
                   help="count over the first BATCH_SIZE * OPS_BATCHES test samples, as snnkd evaluate "
                        "does (default: 4)")
    p.add_argument("--energy-table", type=Path, default=None,
                   help="YAML of per-target energies (default: the packaged snnkd/resources/energy.yaml)")
    p.add_argument("--seed", type=int, default=0, help="seed for stochastic encodings")
    p.set_defaults(func=run, subparser=p)


def run(a: argparse.Namespace) -> int:
    if not a.model or not a.out:
        raise SnnkdError("energy needs --model and --out")
    table = a.table or a.out.with_suffix(".md")
    check_paths(inputs={"--model": a.model, "--nir": a.nir, "--teacher": a.teacher, "--config": a.config,
                        "--energy-table": a.energy_table},
                trees={"--data-root": a.data_root}, outputs={"--out": a.out, "--table": table})  # item 10
    import torch

    from snnkd.cli.inputs import model_inputs
    from snnkd.energy import energy_uj, load_table
    from snnkd.export.energy import (
        compare_with_torch,
        graph_counts,
        markdown_table,
        price_targets,
    )
    from snnkd.export.nir_check import read_nir
    from snnkd.export.nir_export import to_nir
    from snnkd.ops import count_ops

    table_figures = load_table(a.energy_table)  # a bad table fails before any work
    model, meta = load_model(a.model)
    from snnkd.convert import refuse_export
    refuse_export(meta, str(a.model), "NIR (energy counts on the graph)")  # evaluate prices a conversion
    if meta["kind"] != "snn":
        raise SnnkdError(f"{a.model} is an ANN; energy takes the SNN student (give the ANN as --teacher)")
    graph = read_nir(a.nir) if a.nir else to_nir(model, meta)
    x, _ = model_inputs(meta, a.data_root, "test", a.limit_test, a.download)
    x = x[: a.batch_size * a.ops_batches]
    torch.manual_seed(a.seed)
    counts = graph_counts(graph, model.encoder(x, model.T))
    tcounts = None
    if a.teacher:
        teacher, tmeta = load_model(a.teacher)
        if tmeta["kind"] != "ann":
            raise SnnkdError(f"{a.teacher} is not an ANN teacher")
        if tmeta["dataset"] != meta["dataset"]:
            raise SnnkdError(f"teacher was trained on {tmeta['dataset']!r}, the student on {meta['dataset']!r}")
        tcounts = count_ops(teacher, [(x, None)])
    result = {"model": str(a.model), "arch": meta["arch"], "dataset": meta["dataset"], "T": meta["T"],
              "teacher": str(a.teacher) if a.teacher else None,
              "teacher_macs": tcounts.macs if tcounts is not None else None,
              "counts": counts.as_dict(), "torch_check": compare_with_torch(model, x, counts, a.seed),
              "energy_uj": energy_uj(counts, table_figures),
              "energy_pj": price_targets(counts, table_figures, tcounts), "options": resolved(a)}
    io.write_json(a.out, result)
    io.write_text(table, markdown_table(result))
    e = result["energy_pj"]
    print(f"energy {meta['arch']}: " + ", ".join(f"{t} {v['snn_pj'] / 1e3:.4g} nJ" for t, v in e.items())
          + f"; graph vs PyTorch counts max rel. diff {result['torch_check']['max_rel_diff']:.2g} -> {a.out}, {table}")
    return 0
