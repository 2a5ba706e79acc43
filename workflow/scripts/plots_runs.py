"""Report figures about single runs: noise robustness per variant, export agreement per
student (NIR, ONNX, Lava), and time and peak memory per job from Snakemake's benchmark files.

``exports`` rows: the run's names plus the paths of its ``nir.json``, ``onnx.json`` and
``lava.json`` (``None`` where that export is off); ``benchmarks`` rows: ``{"step", "id",
"path"}`` of one ``benchmarks/<step>/<id>.tsv`` (columns ``s`` and ``max_rss``, MB).
Called from plots.py under Snakemake, or by hand through :func:`main`.
"""

import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figures_common import label, no_data, panels, plt, run_name, save  # noqa: E402
from summarise import group_runs, read_json, std  # noqa: E402


def noise_robustness(groups: dict, path: str) -> None:
    """Accuracy (mean ± sd over seeds) on the clean test set and on each ``evaluate.noise``
    variant, one panel per (dataset, student), one bar colour per method group."""
    by_panel: dict[tuple[str, str], list[tuple]] = {}
    for key, runs in groups.items():
        if any(r["ev"].get("noise") for r in runs):
            by_panel.setdefault((key[0], key[2]), []).append(key)
    if not by_panel:
        return no_data(path, "Noise robustness", "evaluate.noise is not set")
    fig, axes = panels(len(by_panel), width=6.5, height=4.0, cols=2)
    for ax, ((dataset, student), keys) in zip(axes, by_panel.items()):
        variants = list(dict.fromkeys(v for k in keys for r in groups[k] for v in r["ev"].get("noise", {})))
        cols = ["clean", *variants]
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):
            evs = [r["ev"] for r in groups[key]]
            vals = [[e["accuracy"] for e in evs]] + [[e["noise"][v]["accuracy"] for e in evs if v in e.get("noise", {})]
                                                    for v in variants]
            ax.bar([j + i * width for j in range(len(cols))], [statistics.fmean(v) if v else float("nan") for v in vals],
                   width, yerr=[std(v) for v in vals], capsize=2, label=label(key))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cols))], cols, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{dataset} / student {student}")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=6)
    save(fig, path)


def _load(p: str | None) -> dict | None:
    return read_json(p) if p and Path(p).is_file() else None


def _layer_panel(ax, lavas: list[dict | None]) -> None:
    """Lava's spike agreement with PyTorch per spiking layer (columns by depth), one row per
    student, the value written in each cell; empty where a student has no such layer."""
    layers = [sorted((r or {}).get("layers", {}).items(), key=lambda kv: kv[1].get("depth", 0)) for r in lavas]
    depth = max((len(ls) for ls in layers), default=0)
    if not depth:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no Lava run", ha="center", va="center", transform=ax.transAxes)
        return
    grid = [[ls[k][1].get("agreement_torch", float("nan")) if k < len(ls) else float("nan") for k in range(depth)]
            for ls in layers]
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.8, vmax=1.0, extent=(0.5, depth + 0.5, len(grid) - 0.5, -0.5))
    for i, row in enumerate(grid):
        for k, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(k + 1, i, f"{v:.3f}", ha="center", va="center", fontsize=6, color="w" if v < 0.93 else "k")
    ax.set_xticks(range(1, depth + 1))
    ax.set_xlabel("spiking layer (depth); Lava vs PyTorch spike agreement")
    ax.figure.colorbar(im, ax=ax, fraction=0.05)


def export_agreement(exports: list[dict], path: str) -> None:
    """Per exported student: NIR spike agreement of the re-imported graph (nirtorch, and each
    peer reader that ran), ONNX max |logit error| against PyTorch, Lava accuracy beside
    PyTorch's (on Lava's subset, and the bit-exact emulator on the whole test set), and
    Lava's spike agreement with PyTorch per layer (``lava.json`` ``layers``)."""
    rows = [(run_name(e), _load(e.get("nir")), _load(e.get("onnx")), _load(e.get("lava"))) for e in exports]
    rows = [r for r in rows if any(r[1:])]
    if not rows:
        return no_data(path, "Export agreement", "no export switched on")
    names = [r[0] for r in rows]
    y = range(len(rows))
    fig, (a_nir, a_onnx, a_lava, a_layers) = plt.subplots(
        1, 4, figsize=(21, 1.2 + 0.45 * len(rows)), gridspec_kw={"width_ratios": [1, 1, 1, 1.3]})
    a_onnx.sharey(a_nir)
    a_lava.sharey(a_nir)
    readers = list(dict.fromkeys(k for r in rows if r[1] for k, v in r[1].items()
                                 if isinstance(v, dict) and "spike_agreement" in v))
    h = 0.8 / max(len(readers), 1)
    for i, reader in enumerate(readers):
        a_nir.barh([j + i * h for j in y], [(r[1] or {}).get(reader, {}).get("spike_agreement", float("nan"))
                                             for r in rows], h, label=reader)
    a_nir.set_xlabel("NIR spike agreement with PyTorch")
    a_nir.set_xlim(0, 1.02)
    a_onnx.barh(list(y), [(r[2] or {}).get("max_abs_error", float("nan")) for r in rows], color="C2")
    a_onnx.set_xscale("symlog", linthresh=1e-9)  # an exact 0 still shows as no bar at 0
    a_onnx.set_xlabel("ONNX max |logit error| vs PyTorch")
    bars = [("Lava", "accuracy_lava", None), ("PyTorch (Lava's subset)", "accuracy_torch", None),
            ("emulator, whole test set", "accuracy_emulator", "whole_test_set"),
            ("PyTorch, whole test set", "accuracy_torch", "whole_test_set")]
    h = 0.8 / len(bars)
    for i, (name, key, block) in enumerate(bars):
        vals = [100 * ((r[3] or {}).get(block, {}) if block else (r[3] or {})).get(key, float("nan")) for r in rows]
        a_lava.barh([j + i * h for j in y], vals, h, label=name)
    a_lava.set_xlabel("accuracy (%)")
    for ax in (a_nir, a_lava):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower left")
    a_nir.set_yticks(list(y), names, fontsize=7)
    a_nir.invert_yaxis()
    for ax in (a_onnx, a_lava):
        ax.tick_params(labelleft=False)
    _layer_panel(a_layers, [r[3] for r in rows])
    a_layers.set_yticks(list(y), [])
    fig.suptitle("Export agreement per student (NIR, ONNX, Lava)")
    save(fig, path)


def read_benchmark(path: str) -> dict[str, float] | None:
    """Seconds and peak RSS (MB) of one Snakemake benchmark file (``-``: not measured)."""
    if not Path(path).is_file():
        return None
    with open(path) as f:
        row = next(csv.DictReader(f, delimiter="\t"), None)
    if row is None:
        return None

    def num(v: str | None) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    return {"s": num(row.get("s")), "max_rss": num(row.get("max_rss"))}


def resources(benchmarks: list[dict], path: str) -> None:
    """Wall time and peak memory of every job that left a benchmark file, one bar per job."""
    rows = [(f"{b['step']}: {b['id']}", m) for b in benchmarks if (m := read_benchmark(b["path"]))]
    if not rows:
        return no_data(path, "Time and peak memory per run", "no benchmark files")
    fig, (a_t, a_m) = plt.subplots(1, 2, figsize=(13, 1.2 + 0.28 * len(rows)), sharey=True)
    y = list(range(len(rows)))
    steps = list(dict.fromkeys(n.split(":")[0] for n, _ in rows))
    colors = [f"C{steps.index(n.split(':')[0]) % 10}" for n, _ in rows]
    a_t.barh(y, [m["s"] for _, m in rows], color=colors)
    a_m.barh(y, [m["max_rss"] for _, m in rows], color=colors)
    a_t.set_xlabel("wall time (s)")
    a_m.set_xlabel("peak resident memory, max_rss (MB)")
    a_t.set_yticks(y, [n for n, _ in rows], fontsize=6)
    a_t.invert_yaxis()
    fig.suptitle("Time and peak memory per job (Snakemake benchmark files)")
    save(fig, path)


def main(records: list[dict], exports: list[dict], benchmarks: list[dict], noise: str, export: str,
         resources_png: str) -> None:
    """Draw the three figures of this file."""
    noise_robustness(group_runs(records), noise)
    export_agreement(exports, export)
    resources(benchmarks, resources_png)
