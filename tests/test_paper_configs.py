"""Every shipped reproduction config (config/paper/*.yaml) is valid and dry-runs, and its
paper figures are attached to runs the config really makes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from snnkd.methods import list_methods
from snnkd.models import list_models
from snnkd.paper import comparison, find_paper, to_markdown

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "config" / "paper").glob("*.yaml"))
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_there_are_paper_configs() -> None:
    names = {c.stem for c in CONFIGS}
    assert {"kdsnn_cifar10_tab1", "kdsnn_mnist_tab4", "ckdsnn_resnet19", "bkdsnn_imagenet"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_valid_and_figures_belong_to_its_runs(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    jsonschema.validate(cfg, SCHEMA)
    archs = {v["arch"] for key in ("teachers", "students") for v in cfg[key].values()}
    assert archs <= set(list_models()), archs - set(list_models())
    assert {m["kind"] for m in cfg["methods"].values()} <= set(list_methods())
    for block in cfg["grid"]:
        paper = block.get("paper")
        assert paper, f"{path.name}: a reproduction block without paper figures"
        figures = set(paper.get("accuracy", {})) | {m for d in paper.get("noise", {}).values() for m in d}
        assert figures <= set(block["methods"]), f"{path.name}: figures for methods the block does not run"
        for variant in paper.get("noise", {}):
            assert variant in cfg.get("evaluate", {}).get("noise", []), f"{path.name}: {variant} never evaluated"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_dry_runs(path: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                        str(tmp_path), "--configfile", str(path), "--cores", "1", "-n", "-p"],
                       capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    cfg = yaml.safe_load(path.read_text())
    gpus = cfg.get("resources", {}).get("distill", {}).get("gpu", 0)
    assert (f"torchrun --standalone --nproc_per_node {gpus} -m snnkd distill" in r.stdout) == (gpus > 1)
    for variant in cfg.get("evaluate", {}).get("noise", []):
        assert f"--noise {variant}" in r.stdout


CFG = {"grid": [
    {"datasets": ["d"], "teachers": ["t1"], "students": ["s"], "methods": ["none", "logit"], "trainers": ["bptt"],
     "T": [4], "seeds": [0, 1], "paper": {"source": "P Tab. 1", "teacher_accuracy": 90.0,
                                           "accuracy": {"none": 80.0, "logit": 85.0},
                                           "noise": {"rotation": {"logit": 70.0}}}},
    {"datasets": ["d"], "teachers": ["t2"], "students": ["s"], "methods": ["logit"], "trainers": ["bptt"],
     "T": [4], "seeds": [0], "paper": {"source": "P Tab. 1", "accuracy": {"logit": 86.0}}},
]}


def test_find_paper_matches_teacher_block_and_baseline() -> None:
    run = {"dataset": "d", "teacher": "t2", "student": "s", "method": "logit", "trainer": "bptt", "T": "4"}
    assert find_paper(CFG, run)["accuracy"]["logit"] == 86.0
    assert find_paper(CFG, {**run, "teacher": "none", "method": "none"})["accuracy"]["none"] == 80.0
    assert find_paper(CFG, {**run, "T": "2"}) is None
    assert find_paper(CFG, {**run, "teacher": "t3"}) is None


def test_comparison_puts_mean_over_seeds_beside_the_paper(tmp_path: Path) -> None:
    def ev(name: str, acc: float, rot: float | None = None) -> str:
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps({"accuracy": acc, **({"noise": {"rotation": {"accuracy": rot}}} if rot else {})}))
        return str(p)

    run = {"dataset": "d", "teacher": "t1", "student": "s", "method": "logit", "trainer": "bptt", "T": 4}
    recs = [{**run, "seed": 0, "eval": ev("a", 84.0, 60.0), "teacher_eval": ev("t", 91.0)},
            {**run, "seed": 1, "eval": ev("b", 86.0, 62.0), "teacher_eval": ev("t", 91.0)}]
    rows = {r["measure"]: r for r in comparison(CFG, recs)}
    assert rows["accuracy"]["ours"] == 85.0 and rows["accuracy"]["paper"] == 85.0 and rows["accuracy"]["seeds"] == 2
    assert rows["noise rotation"]["ours"] == 61.0 and rows["noise rotation"]["paper"] == 70.0
    assert rows["teacher accuracy"]["ours"] == 91.0 and rows["teacher accuracy"]["paper"] == 90.0
    assert rows["accuracy"]["per_seed"] == {0: 84.0, 1: 86.0} and rows["accuracy"]["vs_baseline"] is None
    md = to_markdown(list(rows.values()))
    assert "| 85.00 ± 1.41 (n=2) | 85.00 | - | - | 0: 84.00, 1: 86.00 | P Tab. 1 |" in md


def test_kd_rows_are_tested_against_the_baseline_paired_by_seed(tmp_path: Path) -> None:
    """Differences pair runs of the same seed (any teacher for the baseline); the p-value is
    the two-sided paired t-test, recomputed here from its definition."""
    import math

    from scipy.stats import t as student_t

    run = {"dataset": "d", "student": "s", "trainer": "bptt", "T": 4}
    kd = [81.0, 83.5, 82.0, 80.0]
    base = [80.0, 81.0, 81.5, 77.0]  # seed 4 has no KD run: unpaired, left out
    recs = []
    for i, (method, teacher, accs) in enumerate([("logit", "t1", kd), ("none", "none", base + [99.0])]):
        for seed, acc in enumerate(accs):
            path = tmp_path / f"{i}_{seed}.json"
            path.write_text(json.dumps({"accuracy": acc}))
            recs.append({**run, "method": method, "teacher": teacher, "seed": seed, "eval": str(path)})
    cfg = {**CFG, "methods": {"none": {"kind": "none"}, "logit": {"kind": "logit"}}}
    rows = {(r["method"], r["measure"]): r for r in comparison(cfg, recs)}
    d = [a - b for a, b in zip(kd, base, strict=True)]
    mean_d = sum(d) / 4
    sd = math.sqrt(sum((x - mean_d) ** 2 for x in d) / 3)
    p = 2 * student_t.sf(abs(mean_d / (sd / 2)), df=3)
    logit = rows[("logit", "accuracy")]
    assert logit["pairs"] == 4 and logit["vs_baseline"] == pytest.approx(1.75)
    assert logit["p_value"] == pytest.approx(p, rel=1e-9) and 0.05 < p < 0.2
    assert rows[("none", "accuracy")]["p_value"] is None and rows[("none", "accuracy")]["seeds"] == 5
    assert "| +1.75 (n=4) | " + f"{p:.3g}" + " |" in to_markdown([logit])


def test_summarise_prints_paper_figures_beside_ours(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    import summarise

    ev = {"arch": "a", "params": 1, "synops": 1.0, "macs": 2.0, "mean_firing_rate": 0.1,
          "energy_uj": {"cmos45nm": 1.0}, "accuracy": 84.0, "noise": {"rotation": {"accuracy": 61.0}}}
    (tmp_path / "s.json").write_text(json.dumps(ev))
    (tmp_path / "t.json").write_text(json.dumps({**ev, "accuracy": 91.0}))
    run = {"dataset": "d", "teacher": "t1", "student": "s", "method": "logit", "trainer": "bptt", "T": 4, "seed": 0,
           "eval": str(tmp_path / "s.json"), "teacher_eval": str(tmp_path / "t.json")}
    tsv, md = tmp_path / "summary.tsv", tmp_path / "summary.md"
    summarise.main([run], str(tsv), str(md), CFG)
    head, row = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert dict(zip(head, row))["paper_accuracy"] == "85"
    text = md.read_text()
    assert "## Beside the papers" in text and "| noise rotation | 61.00 | 70.00 | - | - | 0: 61.00 | P Tab. 1 |" in text
