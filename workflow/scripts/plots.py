"""Figures of all runs: accuracy against energy, per-layer firing rates, training curves.

Each point or line is one (dataset, teacher, student, method, trainer, T) group averaged
over its seeds.  Runs under Snakemake (``script:``) or by hand:
``python plots.py records.json OUTDIR`` (records as built in workflow/rules/common.smk).
"""

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarise import group_runs, read_json, std  # noqa: E402


def save(fig, path: str) -> None:
    """Lay out, write as PNG, and free the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def label(key: tuple) -> str:
    dataset, teacher, student, method, trainer, T = key
    if method == "convert":
        return f"{student} ANN-to-SNN conversion T{T}"
    return f"{student} {method} {trainer} T{T}" + (f" ({teacher})" if teacher != "none" else "")


def accuracy_energy(groups: dict, path: str) -> None:
    """Accuracy (mean ± std over seeds) against energy of the first energy target
    (``eval.json``'s ``energy_uj``: snnkd/energy.py, the same figure as the summary and
    ``energy.md``); a model that does not run on that target (``None``) is left out."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    target = None
    teachers = {}
    for key, runs in groups.items():
        evs = [r["ev"] for r in runs]
        target = target or next(iter(evs[0]["energy_uj"]))
        xs = [e["energy_uj"].get(target) for e in evs]
        if any(v is None for v in xs):
            continue
        x = statistics.fmean(xs)
        acc = [e["accuracy"] for e in evs]
        ax.errorbar(x, statistics.fmean(acc), yerr=std(acc), fmt="o", capsize=3, label=label(key))
        if runs[0]["tev"]:
            teachers[(key[0], key[1])] = runs[0]["tev"]
    for (_dataset, teacher), tev in teachers.items():
        if tev["energy_uj"].get(target) is None:
            continue
        ax.plot(tev["energy_uj"][target], tev["accuracy"], "k*", markersize=12)
        ax.annotate(f"ANN {teacher}", (tev["energy_uj"][target], tev["accuracy"]),
                    textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"energy per sample, {target} (µJ)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against energy (stars: ANN teachers)")
    ax.legend(fontsize=7, loc="best")
    save(fig, path)


def accuracy_T(groups: dict, path: str) -> None:
    """Accuracy (mean ± std over seeds) against T: one line per (dataset, teacher, student,
    method, trainer), the ANN-to-SNN conversions (method ``convert``) dashed-marked, and each
    teacher's ANN accuracy as a horizontal line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines: dict[tuple, list[tuple[int, float, float]]] = {}
    teachers = {}
    for key, runs in groups.items():
        acc = [r["ev"]["accuracy"] for r in runs]
        lines.setdefault(key[:5], []).append((int(key[5]), statistics.fmean(acc), std(acc)))
        if runs[0]["tev"]:
            teachers[(key[0], key[1])] = runs[0]["tev"]["accuracy"]
    for (_dataset, _teacher, student, method, trainer), pts in lines.items():
        pts.sort()
        convert = method == "convert"
        name = f"{student} ANN-to-SNN conversion" if convert else f"{student} {method} {trainer}"
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], capsize=3,
                    marker="s" if convert else "o", linestyle="--" if convert else "-", label=name)
    for (_dataset, teacher), acc in teachers.items():
        ax.axhline(acc, color="k", linestyle=":", linewidth=1)
        ax.annotate(f"ANN {teacher}", (ax.get_xlim()[0], acc), textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against T (dashed: ANN-to-SNN conversion; dotted: ANN teachers)")
    ax.legend(fontsize=7, loc="best")
    save(fig, path)


def firing_rates(groups: dict, path: str) -> None:
    """Per-layer firing rate of every group, averaged over seeds."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, runs in groups.items():
        layers = list(runs[0]["ev"]["firing_rates"])
        rates = [statistics.fmean(r["ev"]["firing_rates"].get(layer, 0.0) for r in runs) for layer in layers]
        ax.plot(range(len(layers)), rates, marker="o", label=label(key))
        ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("firing rate (spikes per neuron per step)")
    ax.set_title("Per-layer firing rates")
    ax.legend(fontsize=7)
    save(fig, path)


def read_metrics(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def training_curves(groups: dict, path: str) -> None:
    """Training loss and validation accuracy per epoch, averaged over seeds."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, runs in groups.items():
        if any(r.get("metrics") is None for r in runs):
            continue  # a conversion (snnkd convert) is not trained: no curve
        curves = [read_metrics(r["metrics"]) for r in runs]
        n = min(len(c) for c in curves)
        epochs = [curves[0][i]["epoch"] for i in range(n)]
        ax_loss.plot(epochs, [statistics.fmean(c[i]["train_loss"] for c in curves) for i in range(n)],
                     label=label(key))
        ax_acc.plot(epochs, [statistics.fmean(float("nan") if c[i]["val_acc"] is None else c[i]["val_acc"]
                                              for c in curves) for i in range(n)],  # null: no validation set
                    label=label(key))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy (%)")
    ax_acc.legend(fontsize=7)
    save(fig, path)


def main(records: list[dict], energy: str, rates: str, curves: str, acc_T: str | None = None) -> None:
    groups = group_runs(records)
    Path(energy).parent.mkdir(parents=True, exist_ok=True)
    accuracy_energy(groups, energy)
    firing_rates(groups, rates)
    training_curves(groups, curves)
    if acc_T:
        accuracy_T(groups, acc_T)


if "snakemake" in globals():
    sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (injected by Snakemake)
    out = snakemake.output  # noqa: F821
    main(snakemake.params.records, out.energy, out.rates, out.curves, getattr(out, "accuracy_T", None))  # noqa: F821
elif __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plots.py RECORDS.json OUTDIR")
    d = Path(sys.argv[2])
    main(read_json(sys.argv[1]), str(d / "accuracy_energy.png"), str(d / "firing_rates.png"),
         str(d / "training_curves.png"), str(d / "accuracy_T.png"))
