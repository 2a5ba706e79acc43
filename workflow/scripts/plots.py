"""Figures of all runs for the report: accuracy bars, accuracy against T and against energy,
per-layer firing rates, per-term training curves (plots.py); noise robustness, export
agreement, time and memory (plots_runs.py).

Each point, bar or line is one (dataset, teacher, student, method, trainer, T) group averaged
over its seeds (error bars: sample standard deviation).  A figure whose data the grid does not
hold is still written, saying "no data for this grid", so the report's outputs always exist.
Runs under Snakemake (``script:``) or by hand: ``python plots.py records.json OUTDIR``
(records as built in workflow/rules/common.smk).
"""

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figures_common import label, no_data, panels, plt, save  # noqa: E402
from summarise import group_runs, read_json, std  # noqa: E402


def targets_of(groups: dict) -> list[str]:
    """Every energy target named by any run, in first-seen order."""
    return list(dict.fromkeys(t for runs in groups.values() for r in runs for t in r["ev"]["energy_uj"]))


def teachers_of(groups: dict) -> dict[tuple[str, str], dict]:
    """(dataset, teacher) -> the teacher's eval.json, for every group that has a teacher."""
    return {(k[0], k[1]): runs[0]["tev"] for k, runs in groups.items() if runs[0]["tev"]}


NOT_GREY = (0, 1, 2, 3, 4, 5, 6, 8, 9)  # matplotlib colour cycle without C7 (grey): grey is the baseline


def accuracy_bars(groups: dict, path: str) -> None:
    """Accuracy (mean ± sd over seeds) of every method, one panel per (dataset, student); the
    baseline ``none`` as dashed and each ANN teacher as dotted horizontal lines."""
    by_panel: dict[tuple[str, str], list[tuple]] = {}
    for key in groups:
        if key[3] != "convert":  # conversions are drawn against T (accuracy_T)
            by_panel.setdefault((key[0], key[2]), []).append(key)
    if not by_panel:
        return no_data(path, "Accuracy per method")
    fig, axes = panels(len(by_panel), width=5.5)
    for ax, ((dataset, student), keys) in zip(axes, by_panel.items()):
        accs = [[r["ev"]["accuracy"] for r in groups[k]] for k in keys]
        names = [f"{k[3]} {k[4]} T{k[5]}" + (f" ({k[1]})" if k[1] != "none" else "") for k in keys]
        colors = ["0.6" if k[3] == "none" else f"C{NOT_GREY[i % len(NOT_GREY)]}" for i, k in enumerate(keys)]
        ax.bar(range(len(keys)), [statistics.fmean(a) for a in accs], yerr=[std(a) for a in accs], capsize=4,
               color=colors)
        ax.set_xticks(range(len(keys)), names, rotation=45, ha="right", fontsize=7)
        for k, a in zip(keys, accs):
            if k[3] == "none":
                ax.axhline(statistics.fmean(a), color="0.3", linestyle="--", linewidth=1,
                           label=f"baseline none {k[4]} T{k[5]}")
        for teacher, tev in {k[1]: groups[k][0]["tev"] for k in keys if groups[k][0]["tev"]}.items():
            ax.axhline(tev["accuracy"], color="k", linestyle=":", linewidth=1.2, label=f"ANN teacher {teacher}")
        ax.set_title(f"{dataset} / student {student}")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(*zoom(accs, [tev["accuracy"] for k in keys if (tev := groups[k][0]["tev"])]))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper right", framealpha=0.9)
    save(fig, path)


def zoom(accs: list[list[float]], lines: list[float]) -> tuple[float, float]:
    """y-limits that show differences of a fraction of a point: from 2 pp below the lowest
    mean - sd (or line) to 3 pp above the highest mean + sd (room for the legend), within [0, 100]."""
    lows = [statistics.fmean(a) - std(a) for a in accs] + lines
    highs = [statistics.fmean(a) + std(a) for a in accs] + lines
    return max(0.0, min(lows) - 2.0), min(100.0, max(highs) + 3.0)


def accuracy_energy(groups: dict, path: str) -> None:
    """Accuracy (mean ± std over seeds) against energy per sample (``eval.json``'s
    ``energy_uj``: snnkd/energy.py, the same figure as the summary and ``energy.md``), one
    panel per energy target; a model that does not run on a target (``None``) is left out of
    that panel, and the ANN teachers are stars."""
    targets = targets_of(groups)
    if not targets:
        return no_data(path, "Accuracy against energy")
    fig, axes = panels(len(targets), width=6.0, height=4.5, cols=2)
    teachers = teachers_of(groups)
    for ax, target in zip(axes, targets):
        for key, runs in groups.items():
            xs = [r["ev"]["energy_uj"].get(target) for r in runs]
            if any(v is None for v in xs):
                continue
            acc = [r["ev"]["accuracy"] for r in runs]
            ax.errorbar(statistics.fmean(xs), statistics.fmean(acc), yerr=std(acc), fmt="o", capsize=3, label=label(key))
        off = []
        for (_dataset, teacher), tev in teachers.items():
            uj = tev["energy_uj"].get(target)
            if uj is None:
                off.append(teacher)
                continue
            ax.plot(uj, tev["accuracy"], "k*", markersize=12)
            ax.annotate(f"ANN {teacher}", (uj, tev["accuracy"]), textcoords="offset points", xytext=(5, -10), fontsize=8)
        if off:
            ax.text(0.02, 0.02, f"ANN teacher(s) {', '.join(off)}: do not run on {target}", transform=ax.transAxes,
                    fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel(f"energy per sample on {target} (µJ)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{target} (stars: ANN teachers)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="best")
    save(fig, path)


def accuracy_T(groups: dict, path: str) -> None:
    """Accuracy (mean ± std over seeds) against T for every (dataset, teacher, student, method,
    trainer) run at two or more T, and every ANN-to-SNN conversion (method ``convert``,
    dashed, square markers); each teacher's ANN accuracy as a dotted horizontal line."""
    lines: dict[tuple, list[tuple[int, float, float]]] = {}
    for key, runs in groups.items():
        acc = [r["ev"]["accuracy"] for r in runs]
        lines.setdefault(key[:5], []).append((int(key[5]), statistics.fmean(acc), std(acc)))
    lines = {k: sorted(v) for k, v in lines.items() if len(v) > 1 or k[3] == "convert"}
    if not lines:
        return no_data(path, "Accuracy against T", "no method was run at more than one T")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (_dataset, _teacher, student, method, trainer), pts in lines.items():
        convert = method == "convert"
        name = f"{student} ANN-to-SNN conversion" if convert else f"{student} {method} {trainer}"
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], capsize=3,
                    marker="s" if convert else "o", linestyle="--" if convert else "-", label=name)
    for (_dataset, teacher), tev in teachers_of({k: v for k, v in groups.items() if k[:5] in lines}).items():
        ax.axhline(tev["accuracy"], color="k", linestyle=":", linewidth=1)
        ax.annotate(f"ANN {teacher}", (ax.get_xlim()[0], tev["accuracy"]), textcoords="offset points", xytext=(3, 3),
                    fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against T (dashed: ANN-to-SNN conversion; dotted: ANN teachers)")
    ax.legend(fontsize=7, loc="best")
    save(fig, path)


def firing_rates(groups: dict, path: str) -> None:
    """Per-layer firing rate (mean over seeds), one panel per architecture with that
    architecture's own layer names on its x axis."""
    by_arch: dict[str, dict[tuple, list[dict]]] = {}
    for key, runs in groups.items():
        if runs[0]["ev"].get("firing_rates"):
            by_arch.setdefault(runs[0]["ev"]["arch"], {})[key] = runs
    if not by_arch:
        return no_data(path, "Per-layer firing rates", "no spiking layers")
    fig, axes = panels(len(by_arch), width=6.0, height=4.2, cols=2)
    for ax, (arch, arch_groups) in zip(axes, by_arch.items()):
        layers = list(dict.fromkeys(n for runs in arch_groups.values() for r in runs for n in r["ev"]["firing_rates"]))
        for key, runs in arch_groups.items():
            rates = [statistics.fmean(r["ev"]["firing_rates"].get(n, float("nan")) for r in runs) for n in layers]
            ax.plot(range(len(layers)), rates, marker="o", label=label(key))
        ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=7)
        ax.set_title(arch)
        ax.set_ylabel("firing rate (spikes per neuron per step)")
        ax.legend(fontsize=6)
    save(fig, path)


def read_metrics(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


SKIP_TERMS = {"train_loss", "train_acc"}


def loss_terms(curves: list[list[dict]]) -> list[str]:
    """The weighted loss terms logged as ``train_<term>`` (the total and the accuracy aside)."""
    return [k for k in dict.fromkeys(k for c in curves for row in c for k in row)
            if k.startswith("train_") and k not in SKIP_TERMS]


def training_curves(groups: dict, path: str) -> None:
    """One panel per weighted loss term (``train_<term>`` in metrics.jsonl: each as the method
    adds it to the loss, so a KD term scaled by tau² is not drawn beside plain CE), the total
    loss, and validation accuracy, per epoch and averaged over seeds."""
    curves = {key: [read_metrics(r["metrics"]) for r in runs] for key, runs in groups.items()
              if all(r.get("metrics") for r in runs)}  # a conversion (snnkd convert) is not trained
    if not curves:
        return no_data(path, "Training curves", "no trained run")
    terms = loss_terms([c for cs in curves.values() for c in cs])
    names = [*terms, "train_loss", "val_acc"]
    fig, axes = panels(len(names), width=4.6, height=3.4, cols=3)
    for ax, name in zip(axes, names):
        for key, cs in curves.items():
            n = min(len(c) for c in cs)
            if not all(name in c[i] for c in cs for i in range(n)):
                continue  # this method has no such term
            vals = [statistics.fmean(float("nan") if c[i][name] is None else c[i][name] for c in cs) for i in range(n)]
            ax.plot([cs[0][i]["epoch"] for i in range(n)], vals, marker=".", label=label(key))
        ax.set_xlabel("epoch")
        ax.set_title({"train_loss": "total training loss", "val_acc": "validation accuracy (%)"}.get(
            name, f"loss term '{name[len('train_'):]}' (weighted)"), fontsize=9)
    axes[-1].legend(fontsize=6)
    save(fig, path)


FIGURES = {"bars": accuracy_bars, "energy": accuracy_energy, "rates": firing_rates, "curves": training_curves,
           "accuracy_T": accuracy_T}


def main(records: list[dict], energy: str, rates: str, curves: str, acc_T: str | None = None,
         bars: str | None = None) -> None:
    """Draw every figure of this file for ``records`` (the optional ones when given a path)."""
    groups = group_runs(records)
    paths = {"energy": energy, "rates": rates, "curves": curves, "accuracy_T": acc_T, "bars": bars}
    for name, draw in FIGURES.items():
        if paths[name]:
            draw(groups, paths[name])


if "snakemake" in globals():
    sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (injected by Snakemake)
    out = snakemake.output  # noqa: F821
    records = snakemake.params.records  # noqa: F821
    main(records, out.accuracy_energy, out.firing_rates, out.training_curves, out.accuracy_T, out.accuracy_bars)
    import plots_runs  # noqa: E402

    plots_runs.main(snakemake.params.records, snakemake.params.exports, snakemake.params.benchmarks,  # noqa: F821
                    out.noise, out.export_agreement, out.resources)
elif __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plots.py RECORDS.json OUTDIR")
    d = Path(sys.argv[2])
    main(read_json(sys.argv[1]), str(d / "accuracy_energy.png"), str(d / "firing_rates.png"),
         str(d / "training_curves.png"), str(d / "accuracy_T.png"), str(d / "accuracy_bars.png"))
