"""The report's figures and HTML tables (workflow/scripts/plots.py, plots_runs.py,
summary_html.py) on small fabricated eval.json / metrics.jsonl / export / benchmark files
shaped like the real ones, inspected through the matplotlib figure objects; and a dry run
that plans every report output (issue 14)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from matplotlib.container import BarContainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

import figures_common  # noqa: E402
import plots  # noqa: E402
import plots_runs  # noqa: E402
import summary_html  # noqa: E402
from summarise import group_runs, summary_rows  # noqa: E402

LAYERS = {"resnet_tiny": ["stem.lif", "layer1.lif1", "layer1.lif2", "layer2.lif1", "layer2.lif2"],
          "vgg_tiny": ["features.lif1", "features.lif2"]}
STUDENTS = {"rt": "resnet_tiny", "vt": "vgg_tiny"}


def write(path: Path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return str(path)


def evaluation(arch: str, acc: float, T: int, noise: bool = True) -> dict:
    rates = {n: 0.05 * (i + 1) for i, n in enumerate(LAYERS[arch])}
    ev = {"arch": arch, "T": T, "accuracy": acc, "params": 1000, "synops": 2e5 * T, "macs": 1e4,
          "mean_firing_rate": 0.1, "firing_rates": rates, "energy_uj": {"cmos45nm": 0.2 * T, "loihi": 0.01 * T}}
    if noise:
        ev["noise"] = {"gaussian:0.1": {"accuracy": acc - 10, "loss": 1.0}, "rotation": {"accuracy": acc - 20, "loss": 2.0}}
    return ev


def metrics(method: str, epochs: int = 3) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "lr": 0.05, "train_ce": 2.0 / e, "train_acc": 50.0 + e, "val_acc": 60.0 + e, "val_loss": 1.0}
        if method == "logit":
            row["train_kd"] = 13.0 / e  # tau² = 16 times a KL divergence
        row["train_loss"] = row["train_ce"] + row.get("train_kd", 0.0)
        rows.append(row)
    return rows


@pytest.fixture
def grid(tmp_path: Path) -> list[dict]:
    """Records of a grid: students rt (5 layers) and vt (2 layers), methods none and logit,
    2 seeds at T = 2, logit on rt also at T = 4 (a T sweep), one teacher."""
    tev = write(tmp_path / "teacher.json", {"arch": "resnet_tiny", "accuracy": 95.0, "params": 5000, "synops": 0,
                                            "macs": 1e6, "energy_uj": {"cmos45nm": 5.0, "loihi": None}})
    recs = []
    plan = [(s, m, 2, seed) for s in STUDENTS for m in ("none", "logit") for seed in (0, 1)] + [("rt", "logit", 4, 0)]
    for student, method, T, seed in plan:
        teacher = "none" if method == "none" else "rt"
        rid = f"{student}/{method}/T{T}/seed{seed}"
        acc = 80.0 + 5 * (method == "logit") + seed + T
        metrics_path = tmp_path / "m" / rid / "metrics.jsonl"
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in metrics(method)))
        recs.append({"dataset": "digits", "teacher": teacher, "student": student, "method": method, "trainer": "bptt",
                     "T": T, "seed": seed, "eval": write(tmp_path / "e" / rid / "eval.json",
                                                         evaluation(STUDENTS[student], acc, T)),
                     "metrics": str(metrics_path), "teacher_eval": None if teacher == "none" else tev})
    return recs


@pytest.fixture
def figures(monkeypatch) -> list:
    """Every figure the scripts save, kept open for inspection (then written as usual)."""
    kept = []

    def keep(fig, path):
        kept.append(fig)
        fig.savefig(path)

    for mod in (figures_common, plots, plots_runs):
        monkeypatch.setattr(mod, "save", keep)
    yield kept
    for fig in kept:
        figures_common.plt.close(fig)


def png(path: Path) -> bool:
    return path.read_bytes()[:4] == b"\x89PNG"


def ticks(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def test_firing_rates_one_panel_per_architecture_with_its_own_layer_names(grid, figures, tmp_path):
    out = tmp_path / "rates.png"
    plots.firing_rates(group_runs(grid), str(out))
    assert png(out)
    (fig,) = figures
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert set(axes) == {"resnet_tiny", "vgg_tiny"}
    for arch, ax in axes.items():
        assert ticks(ax) == LAYERS[arch]
        assert all(len(line.get_xdata()) == len(LAYERS[arch]) for line in ax.get_lines())
    assert len(axes["vgg_tiny"].get_lines()) == 2  # vt none, vt logit
    line = axes["resnet_tiny"].get_lines()[0]
    assert list(line.get_ydata()) == pytest.approx([0.05 * (i + 1) for i in range(5)])


def test_accuracy_energy_one_panel_per_target_teacher_starred_where_it_runs(grid, figures, tmp_path):
    plots.accuracy_energy(group_runs(grid), str(tmp_path / "e.png"))
    (fig,) = figures
    assert [ax.get_title().split()[0] for ax in fig.axes] == ["cmos45nm", "loihi"]
    cmos, loihi = fig.axes
    stars = [line for line in cmos.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [5.0]
    assert not [line for line in loihi.get_lines() if line.get_marker() == "*"]
    assert any("do not run on loihi" in t.get_text() for t in loihi.texts)
    assert len(loihi.containers) == 5  # five groups, each an errorbar at its loihi energy


def test_training_curves_put_each_weighted_term_on_its_own_panel(grid, figures, tmp_path):
    plots.training_curves(group_runs(grid), str(tmp_path / "c.png"))
    (fig,) = figures
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss term 'ce' (weighted)", "loss term 'kd' (weighted)", "total training loss",
                      "validation accuracy (%)"]
    ce, kd, total, val = fig.axes
    assert len(ce.get_lines()) == 5 and len(kd.get_lines()) == 3  # only the logit groups have a kd term
    assert max(max(line.get_ydata()) for line in kd.get_lines()) == pytest.approx(13.0)
    assert max(max(line.get_ydata()) for line in ce.get_lines()) == pytest.approx(2.0)
    assert list(val.get_lines()[0].get_ydata()) == pytest.approx([61.0, 62.0, 63.0])


def test_accuracy_bars_per_student_with_sd_baseline_and_teacher(grid, figures, tmp_path):
    plots.accuracy_bars(group_runs(grid), str(tmp_path / "b.png"))
    (fig,) = figures
    assert [ax.get_title() for ax in fig.axes] == ["digits / student rt", "digits / student vt"]
    rt, vt = fig.axes
    assert ticks(rt) == ["none bptt T2", "logit bptt T2 (rt)", "logit bptt T4 (rt)"]
    heights = [p.get_height() for p in rt.patches]
    assert heights == pytest.approx([82.5, 87.5, 89.0])  # seeds 0 and 1 averaged
    (bars,) = [c for c in rt.containers if isinstance(c, BarContainer)]
    segments = bars.errorbar.lines[2][0].get_segments()
    assert segments[0][1][1] - segments[0][0][1] == pytest.approx(2 * 0.7071, abs=1e-3)  # ± sd over 2 seeds
    labels = rt.get_legend_handles_labels()[1]
    assert "baseline none bptt T2" in labels and "ANN teacher rt" in labels
    low, high = rt.get_ylim()  # zoomed so sub-point differences show, every bar top and line inside
    assert 0 < low < 82.5 - 0.7071 and high > 89.0 and high - low < 30


def test_accuracy_T_draws_only_the_swept_methods(grid, figures, tmp_path):
    plots.accuracy_T(group_runs(grid), str(tmp_path / "t.png"))
    (fig,) = figures
    (ax,) = fig.axes
    assert ax.get_legend_handles_labels()[1] == ["rt logit bptt"]
    unswept = [r for r in grid if r["T"] == 2]
    plots.accuracy_T(group_runs(unswept), str(tmp_path / "t2.png"))
    assert figures_common.NO_DATA in figures[-1].axes[0].texts[0].get_text()


def test_noise_robustness_bars_per_variant(grid, figures, tmp_path):
    plots_runs.noise_robustness(group_runs(grid), str(tmp_path / "n.png"))
    (fig,) = figures
    rt = fig.axes[0]
    assert ticks(rt) == ["clean", "gaussian:0.1", "rotation"]
    assert len(rt.patches) == 3 * 3  # three groups on rt, clean + two variants each


def test_export_agreement_per_student(grid, figures, tmp_path):
    exports = []
    for i, rec in enumerate(r for r in grid if r["seed"] == 0 and r["T"] == 2):
        d = tmp_path / "x" / str(i)
        nir = {"nirtorch": {"spike_agreement": 0.99}, "spikingjelly": {"skipped": "not installed"}}
        lava = {"accuracy_lava": 0.8, "accuracy_torch": 0.9,
                "whole_test_set": {"accuracy_emulator": 0.85, "accuracy_torch": 0.875},
                "layers": {"b": {"depth": 2, "agreement_torch": 0.95 - i / 100},
                           "a": {"depth": 1, "agreement_torch": 0.99}}}
        exports.append({**rec, "nir": write(d / "nir.json", nir), "onnx": write(d / "onnx.json", {"max_abs_error": 1e-6}),
                        "lava": write(d / "lava.json", lava)})
    plots_runs.export_agreement(exports, str(tmp_path / "x.png"))
    (fig,) = figures
    a_nir, a_onnx, a_lava, a_layers = fig.axes[:4]
    assert [t.get_text() for t in a_nir.get_yticklabels()] == [figures_common.run_name(e) for e in exports]
    assert a_nir.get_legend_handles_labels()[1] == ["nirtorch"]  # a skipped reader has no bar
    assert [p.get_width() for p in a_onnx.patches] == pytest.approx([1e-6] * 4)
    widths = sorted({round(p.get_width(), 6) for p in a_lava.patches})
    assert widths == [80.0, 85.0, 87.5, 90.0]
    (im,) = a_layers.get_images()  # one row per student, layers ordered by depth
    assert im.get_array().tolist() == [[0.99, pytest.approx(0.95 - i / 100)] for i in range(4)]
    assert [t.get_text() for t in a_layers.texts[:2]] == ["0.990", "0.950"]


def test_resources_from_benchmark_files(figures, tmp_path):
    bench = []
    for i, step in enumerate(["pretrain", "distill", "evaluate/distill"]):
        p = tmp_path / "benchmarks" / step / "run.tsv"
        p.parent.mkdir(parents=True)
        p.write_text("s\th:m:s\tmax_rss\tmax_vms\n" f"{10.5 * (i + 1)}\t0:00:10\t{300 + i}\t900\n")
        bench.append({"step": step, "id": "run", "path": str(p)})
    bench.append({"step": "export/nir", "id": "run", "path": str(tmp_path / "absent.tsv")})
    plots_runs.resources(bench, str(tmp_path / "r.png"))
    (fig,) = figures
    a_t, a_m = fig.axes
    assert [p.get_width() for p in a_t.patches] == pytest.approx([10.5, 21.0, 31.5])
    assert [p.get_width() for p in a_m.patches] == pytest.approx([300, 301, 302])
    assert [t.get_text() for t in a_t.get_yticklabels()] == ["pretrain: run", "distill: run", "evaluate/distill: run"]


def test_every_figure_is_written_when_the_grid_has_no_data_for_it(tmp_path):
    outs = {n: tmp_path / f"{n}.png" for n in ("e", "r", "c", "t", "b", "n", "x", "m")}
    plots.main([], *(str(outs[n]) for n in ("e", "r", "c", "t", "b")))
    plots_runs.main([], [], [], str(outs["n"]), str(outs["x"]), str(outs["m"]))
    assert all(png(p) for p in outs.values())


def test_summary_html_holds_every_summary_row(grid, tmp_path):
    for rec in grid:
        if rec["student"] == "rt" and rec["method"] == "none":
            rec["student"] = "r<t>"  # escaped, not markup
    out = tmp_path / "summary.html"
    summary_html.main(grid, str(out))
    text = out.read_text()
    body = re.search(r"<tbody>(.*)</tbody>", text, re.S).group(1)
    trs = re.findall(r"<tr>(.*?)</tr>", body)
    rows = summary_rows(grid)
    assert len(trs) == len(rows) == 5
    for tr, row in zip(trs, rows):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr)
        assert cells[:6] == [str(row[k]).replace("<", "&lt;").replace(">", "&gt;") for k in
                             ("dataset", "teacher", "student", "method", "trainer", "T")]
        assert f"{row['accuracy_mean']:.2f} ± {row['accuracy_std']:.2f} (n={row['seeds']})" in cells
    assert "<t>" not in text


def test_papers_html_sets_our_figures_beside_the_papers(grid, tmp_path):
    config = {"grid": [{"datasets": ["digits"], "teachers": ["rt"], "students": ["rt"], "methods": ["logit"],
                        "trainers": ["bptt"], "T": [2], "seeds": [0, 1],
                        "paper": {"source": "Tab. 1", "accuracy": {"logit": 91.5}}}]}
    out = tmp_path / "papers.html"
    summary_html.main(grid, None, config, str(out))
    text = out.read_text()
    assert "<td>91.50</td>" in text and "Tab. 1" in text
    summary_html.main(grid, None, {"grid": [{}]}, str(out))
    assert "no paper figures in this grid" in out.read_text()


@pytest.mark.timeout(300)
def test_dry_run_plans_every_report_output(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "test" / "tiny.yaml").read_text())
    cfg["methods"]["bw"] = {"kind": "blockwise"}
    cfg["grid"][0]["methods"].append("bw")
    cfg["grid"][0]["paper"] = {"source": "Tab. 1", "accuracy": {"logit": 90.0}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n",
                        "--configfile", str(path)], capture_output=True, text=True, timeout=280)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text[-3000:]
    for name in plots_figures():
        assert f"results/plots/{name}.png" in text, name
    for out in ("results/summary/summary.html", "results/summary/papers.html",
                "results/plots/blockwise/digits/rt/rt/bw/bptt/T2/seed0/fig2_cosine.png",
                "results/plots/blockwise/digits/rt/rt/bw/bptt/T2/seed0/fig3_val_acc.png"):
        assert out in text, out
    assert "results/plots/blockwise/digits/none/rt/none" not in text  # only block-wise runs


def plots_figures() -> list[str]:
    """The figure names summary.smk declares (its PLOTS tuple)."""
    smk = (ROOT / "workflow" / "rules" / "summary.smk").read_text()
    names = re.findall(r'"results/plots/(\w+)\.png"', smk)
    assert len(names) >= 8
    return names
