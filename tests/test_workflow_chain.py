"""The export rules chain: one NIR graph per student, read by export_lava and energy.

One dry run (``-n --forceall``) of the tiny grid with every export switched on; its job
list says which files each job reads and writes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "config" / "test" / "tiny.yaml"


def planned_jobs(workdir: Path, config: Path) -> list[dict]:
    """Every job of a forced dry run: ``{"rule", "input": [...], "output": [...]}``."""
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                        "-n", "--forceall", "--configfile", str(config)],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = []
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", r.stdout + r.stderr, re.MULTILINE):
        fields = dict(re.findall(r"^    (\w+): (.*)$", m.group(2), re.MULTILINE))
        jobs.append({"rule": m.group(1), "input": fields.get("input", "").split(", ") if "input" in fields else [],
                     "output": fields.get("output", "").split(", ")})
    return jobs


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> list[dict]:
    """The tiny grid (baseline + logit student) with NIR off, but Lava, ONNX and energy on."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["export"] = {"nir": False, "onnx": True, "lava": True, "energy": True}
    path = tmp_path_factory.mktemp("chain") / "export.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return planned_jobs(path.parent, path)


def by_rule(jobs: list[dict], rule: str) -> list[dict]:
    return [j for j in jobs if j["rule"] == rule]


def test_nir_graph_is_built_once_per_student(jobs: list[dict]) -> None:
    students = {j["output"][0].rsplit("/", 1)[0].removeprefix("results/distill/") for j in by_rule(jobs, "distill")}
    assert len(students) == 2
    nir = [o for j in by_rule(jobs, "export_nir") for o in j["output"] if o.endswith(".nir")]
    assert sorted(nir) == sorted(f"results/export/nir/{s}/model.nir" for s in students)  # once each
    assert all(j["rule"] == "export_nir" for j in jobs for o in j["output"] if o.endswith(".nir"))


@pytest.mark.parametrize("rule", ["energy", "export_lava"])
def test_energy_and_lava_read_the_students_nir_file(jobs: list[dict], rule: str) -> None:
    planned = by_rule(jobs, rule)
    assert len(planned) == 2
    for job in planned:
        sid = re.fullmatch(r"results/(?:energy|export/lava)/(.+)/[^/]+", job["output"][0]).group(1)
        assert f"results/export/nir/{sid}/model.nir" in job["input"], job
        assert f"results/distill/{sid}/model.pt" in job["input"], job


def test_onnx_export_does_not_wait_for_the_nir_graph(jobs: list[dict]) -> None:
    assert by_rule(jobs, "export_onnx") and not any(i.endswith(".nir") for j in by_rule(jobs, "export_onnx")
                                                    for i in j["input"])


def test_shell_commands_pass_the_nir_file() -> None:
    """Both commands get the graph through their existing ``--nir`` option."""
    text = (ROOT / "workflow" / "rules" / "export.smk").read_text()
    for rule in ("export_lava", "energy"):
        body = text.split(f"rule {rule}:", 1)[1].split("\nrule ", 1)[0]
        assert "--nir {input.nir:q}" in body, rule


def _option(cmd: str, name: str) -> str | None:
    m = re.search(rf"--{name} (\S+)", cmd)
    return m.group(1) if m else None


def test_energy_counts_the_samples_evaluate_counts(tmp_path) -> None:
    """energy.md and eval.json price the same samples: the energy job gets evaluate's
    --limit-test, --batch-size and --ops-batches for the same student (issue 13)."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["export"] = {"nir": True, "energy": True, "limit_test": 7}  # the export check's subset is not energy's
    cfg["evaluate"] = {"limit_test": 40, "batch_size": 16, "ops_batches": 2}
    path = tmp_path / "energy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                        "-n", "-p", "--forceall", "--configfile", str(path)],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "snnkd energy" in ln or "snnkd evaluate" in ln]
    energy = {_option(ln, "model"): ln for ln in lines if "snnkd energy" in ln}
    evaluate = {_option(ln, "model"): ln for ln in lines if "snnkd evaluate" in ln}
    assert energy and set(energy) <= set(evaluate)
    for model, cmd in energy.items():
        for name, value in (("limit-test", "40"), ("batch-size", "16"), ("ops-batches", "2")):
            assert _option(cmd, name) == _option(evaluate[model], name) == value, (name, cmd)
