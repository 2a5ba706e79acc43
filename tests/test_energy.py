"""The one energy model (snnkd/energy.py): pricing against hand sums, the checked and
sourced energy table, and one number for one model and target in eval.json, the
workflow summary, the plots and energy.md (issue 13)."""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
from export_models import teacher, trained

from snnkd.cli.main import main
from snnkd.energy import Counts, LayerCounts, dense_pj, energy_uj, load_table, price

ROOT = Path(__file__).resolve().parents[1]
DIGITAL = {"model": "digital", "mac_pj": 4.0, "ac_pj": 1.0, "neuron_update_pj": 0.5}
EVENTS = {"model": "event_driven", "mac_pj": 9.0, "ac_pj": 2.0, "neuron_update_pj": 3.0}

pytestmark = pytest.mark.timeout(600)


def two_layer_counts(spiking: bool = True) -> Counts:
    layers = OrderedDict(conv=LayerCounts("conv", "Conv2d", "real", macs=100.0, events=40.0, dense_macs=50.0),
                         fc=LayerCounts("fc", "Linear", "pooled spikes", synops=30.0, events=30.0, dense_macs=20.0))
    return Counts(layers=layers, neurons=OrderedDict(act=16.0), output_neurons=6.0, spiking=spiking, T=2)


def test_price_digital_and_event_driven_by_hand() -> None:
    c = two_layer_counts()
    d = price(c, DIGITAL)
    assert d["total_pj"] == 100 * 4.0 + 30 * 1.0 + 16 * 0.5
    assert d["per_layer_pj"] == {"conv": 400.0, "fc": 30.0}
    e = price(c, EVENTS)  # events x ac + (neurons + outputs) x neuron update; MACs play no part
    assert e["total_pj"] == (40 + 30) * 2.0 + (16 + 6) * 3.0
    assert e["per_layer_pj"] == {"conv": 80.0, "fc": 60.0}
    assert dense_pj(c, DIGITAL) == 70 * 4.0 and dense_pj(c, EVENTS) is None
    assert energy_uj(c, {"d": DIGITAL, "e": EVENTS}) == {"d": d["total_pj"] / 1e6, "e": e["total_pj"] / 1e6}
    assert price(two_layer_counts(spiking=False), EVENTS)["total_pj"] is None  # an ANN does not run on Loihi
    assert price(c, {"mac_pj": 4.0, "ac_pj": 1.0})["total_pj"] == 430.0  # no model: digital, no neuron cost


def test_packaged_table_is_checked_and_sourced() -> None:
    table = load_table()
    assert {t["model"] for t in table.values()} == {"digital", "event_driven"}
    for name, t in table.items():
        figures = [k for k in t if k.endswith("_pj")]
        assert set(t["figures"]) == set(figures), name  # every figure has its own source ...
        for key in figures:  # ... and says whether it was checked against the primary source
            assert t["figures"][key]["source"] and isinstance(t["figures"][key]["checked"], bool), (name, key)
    assert "Davies" in table["loihi"]["source"] and "Horowitz" in table["cmos45nm"]["source"]


@pytest.mark.parametrize("body, words", [
    ("x: {mac_pj: 1, ac_pj: 1, model: analog}\n", "x.model must be one of"),
    ("x: {mac_pj: 1, ac_pj: 1, figures: {ac_pj: {source: s}}}\n", "x.figures.ac_pj needs"),
    ("x: {mac_pj: 1, ac_pj: 1, figures: {e_pj: {source: s, checked: true}}}\n", "names no *_pj figure"),
    ("x: {mac_pj: -1, ac_pj: 1}\n", "x.mac_pj must be a finite number"),
])
@pytest.mark.parametrize("command", ["evaluate", "energy"])
def test_bad_energy_table_is_one_error_line(tmp_path, capsys, command: str, body: str, words: str) -> None:
    bad = tmp_path / "table.yaml"
    bad.write_text(body)
    out, model = tmp_path / "out.json", trained("resnet_tiny")
    capsys.readouterr()
    assert main([command, "--model", str(model), "--out", str(out), "--energy-table", str(bad),
                 "--limit-test", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("snnkd: error:") and words in err[0], err
    assert not out.exists() and not out.with_suffix(".md").exists()


def md_uj(md: str, target: str) -> float:
    """The SNN's µJ figure of ``target`` in energy.md's totals table."""
    row = next(line for line in md.splitlines() if line.startswith(f"| {target} |"))
    return float(row.split("|")[4])


def test_eval_summary_plots_and_energy_md_agree(tmp_path, monkeypatch) -> None:
    """One tiny trained digits student and its teacher through ``snnkd evaluate``,
    ``snnkd energy`` and the workflow's summary and plot scripts: the same energy per
    target everywhere, counted on the same 64 test samples."""
    student, ann = trained("resnet_tiny"), teacher()
    same = ["--limit-test", "64"]
    for name, model in (("s", student), ("t", ann)):
        assert main(["evaluate", "--model", str(model), "--out", str(tmp_path / f"{name}.json"), *same,
                     "--batch-size", "64", "--ops-batches", "1"]) == 0
    assert main(["energy", "--model", str(student), "--teacher", str(ann), "--out", str(tmp_path / "energy.json"),
                 *same]) == 0
    ev, tev = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("s", "t"))
    en = json.loads((tmp_path / "energy.json").read_text())
    md = (tmp_path / "energy.md").read_text()
    assert set(ev["energy_uj"]) == set(en["energy_uj"]) == {"cmos45nm", "loihi"}
    for target, uj in ev["energy_uj"].items():
        assert uj > 0 and en["energy_uj"][target] == pytest.approx(uj, rel=1e-6), target
        assert en["energy_pj"][target]["snn_pj"] / 1e6 == pytest.approx(uj, rel=1e-6)
        assert md_uj(md, target) == pytest.approx(uj, rel=1e-3)  # printed to 4 significant digits
    assert en["energy_pj"]["cmos45nm"]["teacher_pj"] / 1e6 == pytest.approx(tev["energy_uj"]["cmos45nm"], rel=1e-6)
    assert tev["energy_uj"]["loihi"] is None and en["energy_pj"]["loihi"]["teacher_pj"] is None

    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    monkeypatch.syspath_prepend(str(ROOT / "workflow" / "scripts"))
    import plots
    import summarise

    run = {"dataset": "digits", "teacher": "t", "student": "resnet_tiny", "method": "none", "trainer": "bptt",
           "T": ev["T"], "seed": 0, "eval": str(tmp_path / "s.json"), "teacher_eval": str(tmp_path / "t.json")}
    tsv, smd = tmp_path / "summary.tsv", tmp_path / "summary.md"
    summarise.main([run], str(tsv), str(smd))
    head, row = (line.split("\t") for line in tsv.read_text().splitlines())
    cells = dict(zip(head, row))
    for target, uj in ev["energy_uj"].items():
        assert float(cells[f"energy_uj_{target}"]) == pytest.approx(uj, rel=1e-5)  # 6 digits in the TSV
    assert float(cells["teacher_energy_uj_cmos45nm"]) == pytest.approx(tev["energy_uj"]["cmos45nm"], rel=1e-5)
    assert cells["teacher_energy_uj_loihi"] == "-"

    plotted = []
    real_errorbar = plots.plt.Axes.errorbar
    monkeypatch.setattr(plots.plt.Axes, "errorbar",
                        lambda self, x, y, *a, **k: plotted.append(x) or real_errorbar(self, x, y, *a, **k))
    plots.accuracy_energy(summarise.group_runs([run]), str(tmp_path / "accuracy_energy.png"))
    assert plotted == [pytest.approx(ev["energy_uj"][t], rel=1e-9) for t in ("cmos45nm", "loihi")]  # a panel each
    assert (tmp_path / "accuracy_energy.png").stat().st_size > 0


def test_evaluate_and_energy_count_the_same_samples_by_default_options(tmp_path) -> None:
    """With the same sample options (here no --limit-test: the whole digits test set, and the
    first 2 x 50 samples counted), ``snnkd energy`` and ``snnkd evaluate`` give one energy."""
    student = trained("resnet_tiny")
    opts = ["--batch-size", "50", "--ops-batches", "2"]
    assert main(["evaluate", "--model", str(student), "--out", str(tmp_path / "e.json"), *opts]) == 0
    assert main(["energy", "--model", str(student), "--out", str(tmp_path / "n.json"), *opts]) == 0
    ev, en = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("e", "n"))
    assert ev["test_samples"] > 100  # the counts are over a prefix, not the whole evaluated set
    for target, uj in ev["energy_uj"].items():
        assert en["energy_uj"][target] == pytest.approx(uj, rel=1e-6), target
