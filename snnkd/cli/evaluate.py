"""``snnkd evaluate``: accuracy, per-layer firing rates, SynOps/MACs and energy."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from snnkd import io
from snnkd.cli import progress
from snnkd.cli.common import add_precision_option, device_name, positive_int, resolved
from snnkd.cli.formatting import examples
from snnkd.data import build_datasets
from snnkd.energy import energy_uj, load_table
from snnkd.errors import SnnkdError
from snnkd.noise import parse_variant as parse_noise
from snnkd.ops import count_ops
from snnkd.paths import check_paths
from snnkd.runtime import load_model
from snnkd.train.loop import evaluate_loader, pick_device
from snnkd.train.trainers import check_precision


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, firing rates, SynOps and energy of a model",
                       description="Evaluate a model.pt on its dataset's test split: top-1 accuracy, "
                                   "per-layer firing rates, SynOps, MACs and energy per target. "
                                   "Writes a JSON file.",
                       epilog=examples("snnkd evaluate --model runs/logit/model.pt --out runs/logit/eval.json",
                                       "snnkd evaluate --model runs/logit/model.pt --noise gaussian:0.1 --noise rotation "
                                       "--out runs/logit/noise.json"))
    p.add_argument("--config", type=Path, help="YAML file of option values")
    p.add_argument("--model", type=Path, default=None, help="model.pt from pretrain or distill")
    p.add_argument("--out", type=Path, default=None, help="output JSON file")
    p.add_argument("--data-root", type=Path, default=Path("data"), help="where datasets live")
    p.add_argument("--download", action="store_true", help="download the dataset if absent")
    p.add_argument("--limit-test", type=positive_int, default=None, help="evaluate on a fixed subset")
    p.add_argument("--batch-size", type=positive_int, default=256, help="evaluation batch size")
    p.add_argument("--ops-batches", type=positive_int, default=4,
                   help="batches over which operations and firing rates are counted")
    p.add_argument("--energy-table", type=Path, default=None,
                   help="YAML of per-target energies (default: the packaged table, 45 nm CMOS)")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda")
    add_precision_option(p)
    p.add_argument("--seed", type=int, default=0, help="seed for stochastic encodings")
    p.add_argument("--noise", action="append", default=None, metavar="VARIANT",
                   help="also evaluate on a corrupted test set (repeatable): gaussian:SIGMA, background, "
                        "random_noise, rotation, rotation_background (KDSNN Tab. 2); accuracy per "
                        "variant goes to the JSON under 'noise'")
    progress.add_progress_option(p)
    p.set_defaults(func=run, subparser=p)


def energy_table(path: Path | None) -> dict:
    """``--energy-table`` (or the packaged table), checked by :func:`snnkd.energy.load_table`."""
    return load_table(path)


def noise_accuracy(model, dataset: str, a: argparse.Namespace, device: torch.device) -> dict[str, dict]:
    """Accuracy on each ``--noise`` variant of the test split (seeded per variant)."""
    from torchvision.transforms import v2

    from snnkd.data import dataset_info
    from snnkd.noise import CorruptedDataset, variant_transform

    info = dataset_info(dataset)
    _, _, clean = build_datasets(dataset, a.data_root, 0.0, a.download, normalize=False, limit_test=a.limit_test)
    out = {}
    for spec in a.noise:
        torch.manual_seed(a.seed)
        ds = CorruptedDataset(clean, variant_transform(spec), v2.Normalize(info.mean, info.std))
        batches = DataLoader(ds, batch_size=a.batch_size, shuffle=False)
        res = evaluate_loader(model, progress.bar(batches, f"noise {spec}", progress.enabled(a), len(batches), "batch"),
                              device, a.precision)
        out[spec] = {"accuracy": res["acc"], "loss": res["loss"]}
        print(f"  noise {spec}: accuracy {res['acc']:.2f}%")
    return out


def run(a: argparse.Namespace) -> int:
    if not a.model or not a.out:
        raise SnnkdError("evaluate needs --model and --out")
    for spec in a.noise or []:
        parse_noise(spec)  # a bad --noise fails before any work
    check_precision(a.precision, pick_device(a.device))  # fp16 off CUDA fails before any work
    check_paths(inputs={"--model": a.model, "--energy-table": a.energy_table, "--config": a.config},
                trees={"--data-root": a.data_root}, outputs={"--out": a.out})  # issue 16 item 2
    model, meta = load_model(a.model)
    table = energy_table(a.energy_table)
    torch.manual_seed(a.seed)
    _, _, test = build_datasets(meta["dataset"], a.data_root, 0.0, a.download, limit_test=a.limit_test)
    device = pick_device(a.device)
    model.to(device)
    loader = DataLoader(test, batch_size=a.batch_size, shuffle=False)
    acc = evaluate_loader(model, progress.bar(loader, "evaluate", progress.enabled(a), len(loader), "batch"),
                          device, a.precision)
    torch.manual_seed(a.seed)  # the counts see the same encoding as `snnkd energy` on the same samples
    ops = count_ops(model, itertools.islice(loader, a.ops_batches), device)
    result = {
        "model": str(a.model), "arch": meta["arch"], "kind": meta["kind"], "dataset": meta["dataset"],
        "T": meta["T"], "method": meta.get("method"), "trainer": meta.get("trainer"),
        "accuracy": acc["acc"], "loss": acc["loss"], "test_samples": len(test),
        "params": sum(p.numel() for p in model.parameters()),
        "synops": ops.synops, "macs": ops.macs, "neuron_updates": ops.neuron_updates,
        "mean_firing_rate": (sum(ops.firing_rates.values()) / len(ops.firing_rates)) if ops.firing_rates else None,
        "firing_rates": dict(ops.firing_rates),
        "layers": [layer.as_dict() for layer in ops.layers.values()],
        "ops_samples": ops.samples, "events": ops.events, "output_neurons": ops.output_neurons,
        "energy_uj": energy_uj(ops, table),  # snnkd.energy.price, the figure of energy.md too
        "energy_models": {name: t.get("model", "digital") for name, t in table.items()},
        "energy_sources": {name: t.get("source", "") for name, t in table.items()},
        "options": resolved(a),
    }
    if a.noise:
        result["noise"] = noise_accuracy(model, meta["dataset"], a, device)
    io.write_json(a.out, result)
    print(f"{meta['kind']} {meta['arch']}: accuracy {acc['acc']:.2f}%  SynOps {ops.synops:.3g}  "
          f"MACs {ops.macs:.3g}  -> {a.out}")
    return 0
