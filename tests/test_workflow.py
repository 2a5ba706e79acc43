"""The Snakemake workflow: every shipped config dry-runs, bad configs stop with a message
naming the key, --lint is clean, a tiny grid really runs (then has nothing to do), a
hyperparameter change reruns exactly its dependants, and --report embeds the summary."""

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
TINY = ROOT / "config" / "test" / "tiny.yaml"


def smk(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in ``workdir``."""
    return subprocess.run([*SNAKEMAKE, "-d", str(workdir), *args], capture_output=True, text=True,
                          timeout=timeout)


def workflow_configs() -> list[Path]:
    """Every YAML under config/ that is a workflow config (it has a grid)."""
    out = []
    for p in sorted((ROOT / "config").rglob("*.yaml")):
        data = yaml.safe_load(p.read_text())
        if isinstance(data, dict) and "grid" in data:
            out.append(p)
    return out


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    counts: dict[str, int] = {}
    block = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def test_shipped_configs_found():
    names = {p.relative_to(ROOT).as_posix() for p in workflow_configs()}
    assert {"config/config.yaml", "config/test/tiny.yaml", "config/test/slurm.yaml"} <= names


@pytest.mark.parametrize("config", workflow_configs(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dry_run_every_shipped_config(config: Path, tmp_path: Path):
    r = smk(tmp_path, "-n", "--configfile", str(config))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("distill", 0) >= 1 and counts.get("summarise") == 1, counts


def test_default_dry_run_plans_the_grid(tmp_path: Path):
    """Default config, the showcase: 7 methods x 2 seeds (BPTT), 3 methods under the rate
    trainer, a T sweep of 3, a LIF student, one teacher, conversion at 5 T, every seed-0
    student exported."""
    r = smk(tmp_path, "-n", "--configfile", str(ROOT / "config" / "config.yaml"))
    assert r.returncode == 0, r.stderr[-3000:]
    counts = job_counts(r.stdout + r.stderr)
    assert counts["distill"] == 14 + 3 + 3 + 1 and counts["pretrain"] == 1, counts
    assert counts["evaluate"] == 21 and counts["evaluate_teacher"] == 1, counts
    assert counts["convert"] == 5 and counts["evaluate_convert"] == 5, counts
    for rule in ("export_nir", "export_onnx", "export_lava", "energy"):
        assert counts[rule] == 7 + 3 + 3 + 1, (rule, counts)
    assert counts["plot_blockwise"] == 3, counts  # blockwise: two BPTT seeds and one rate run


def test_teacher_limit_train_overrides_only_the_teacher(tmp_path: Path):
    """``teachers.X.limit_train: null`` trains that teacher on the whole training set while
    its students keep the dataset's limit (and an integer sets the teacher's own size)."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["teachers"]["rt"]["limit_train"] = None
    cfg["teachers"]["rt300"] = {"arch": "resnet_tiny", "limit_train": 300, "train": {"epochs": 1}}
    cfg["grid"][0]["teachers"] = ["rt", "rt300"]
    path = tmp_path / "teacher_limit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = smk(tmp_path, "-n", "-p", "--configfile", str(path))
    assert r.returncode == 0, r.stderr[-3000:]
    shell = [ln for ln in (r.stdout + r.stderr).splitlines() if " snnkd " in ln or ln.startswith("snnkd ")]
    pretrain = {ln.split("--out ")[1].split()[0]: ln for ln in shell if "snnkd pretrain" in ln}
    assert "--limit-train" not in pretrain["results/pretrain/digits/rt"], pretrain
    assert "--limit-train 300" in pretrain["results/pretrain/digits/rt300"], pretrain
    distill = [ln for ln in shell if "snnkd distill" in ln]
    assert distill and all("--limit-train 200" in ln for ln in distill), distill


def test_compile_neurons_reaches_only_its_trainers_runs(tmp_path: Path):
    """``trainers.<t>.compile_neurons`` and ``train.compile_neurons`` become ``--compile-neurons``
    on exactly the runs they cover."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["trainers"]["rate"] = {"kind": "rate", "compile_neurons": True}
    cfg["grid"][0]["trainers"] = ["bptt", "rate"]
    cfg["methods"]["logit"].setdefault("train", {})["compile_neurons"] = True
    path = tmp_path / "compiled.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = smk(tmp_path, "-n", "-p", "--configfile", str(path))
    assert r.returncode == 0, r.stderr[-3000:]
    distill = [ln for ln in (r.stdout + r.stderr).splitlines() if "snnkd distill" in ln]
    flagged = {ln.split("--out ")[1].split()[0] for ln in distill if "--compile-neurons" in ln}
    outs = {ln.split("--out ")[1].split()[0] for ln in distill}
    assert flagged == {o for o in outs if "/rate/" in o or "/logit/" in o} and flagged != outs, (flagged, outs)


def write_bad(tmp_path: Path, edit) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c.update(epochz=3), "'epochz' was unexpected"),
    (lambda c: c["students"].update({"a/b": {"arch": "resnet_tiny"}}), "'a/b' does not match"),
    (lambda c: c["grid"][0].update(T=[0]), "instance['grid'][0]['T'][0]"),
    (lambda c: c["methods"]["logit"].update(tau=4), "'tau' was unexpected"),
    (lambda c: c["distill"].update(lr=-1), "instance['distill']['lr']"),
    (lambda c: c["grid"][0].update(students=["missing"]), "grid[0].students: missing not defined"),
    (lambda c: c["distill"].update(epochs=1.0), "config distill/epochs: 1.0 is not of type 'integer'"),
], ids=["unknown-key", "slash-in-name", "T-zero", "param-outside-params", "negative-lr", "undefined-variant",
        "float-epochs"])
def test_bad_config_stops_dry_run(tmp_path: Path, edit, expected: str):
    r = smk(tmp_path, "-n", "--configfile", str(write_bad(tmp_path, edit)))
    assert r.returncode != 0
    assert expected in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
    assert not (tmp_path / "results").exists()


def test_lint_clean(tmp_path: Path):
    r = smk(tmp_path, "--lint", "--configfile", str(TINY))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations, your workflow is in a good condition" in r.stdout + r.stderr


# Under pytest-xdist (scripts/test.sh) the tests that read the tiny run share one worker
# (`--dist loadgroup`): a module fixture runs once per worker that needs it, and this one
# trains a teacher and two students.
TINY_RUN_WORKER = pytest.mark.xdist_group("tiny_run")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny grid run for real once: teacher, baseline and logit students, summary, plots."""
    wd = tmp_path_factory.mktemp("tiny")
    r = smk(wd, "--cores", "2", "--configfile", str(TINY))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return wd


@pytest.mark.slow
@TINY_RUN_WORKER
@pytest.mark.timeout(900)
def test_real_run_writes_results_logs_benchmarks(tiny_run: Path):
    sid = "digits/rt/rt/logit/bptt/T2/seed0"
    for path in ["results/pretrain/digits/rt/model.pt", f"results/distill/{sid}/metrics.jsonl",
                 f"results/evaluate/distill/{sid}/eval.json", f"logs/distill/{sid}.log",
                 f"benchmarks/distill/{sid}.tsv", "logs/evaluate/pretrain/digits/rt.log",
                 "results/plots/accuracy_energy.png", "results/plots/training_curves.png"]:
        assert (tiny_run / path).is_file(), path
    ev = json.loads((tiny_run / f"results/evaluate/distill/{sid}/eval.json").read_text())
    assert ev["method"] == "logit" and ev["T"] == 2 and ev["synops"] > 0
    rows = (tiny_run / "results/summary/summary.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    assert len(rows) == 3  # header + baseline + logit
    logit = dict(zip(header, next(r for r in rows[1:] if "\tlogit\t" in r).split("\t")))
    assert float(logit["accuracy_mean"]) == pytest.approx(ev["accuracy"], abs=1e-3)
    teacher = json.loads((tiny_run / "results/evaluate/pretrain/digits/rt/eval.json").read_text())
    assert float(logit["teacher_accuracy"]) == pytest.approx(teacher["accuracy"], abs=1e-3)
    assert not (tiny_run / "work/state/distill" / f"{sid}.pt").exists()  # removed after success


@pytest.mark.slow
@TINY_RUN_WORKER
def test_second_run_has_nothing_to_do(tiny_run: Path):
    r = smk(tiny_run, "-n", "--configfile", str(TINY))
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]


@pytest.mark.slow
@TINY_RUN_WORKER
def test_reordered_config_reruns_nothing(tiny_run: Path, tmp_path: Path):
    """The same values with keys in another order: no params change, nothing to do."""
    same = tmp_path / "sorted.yaml"
    same.write_text(yaml.safe_dump(yaml.safe_load(TINY.read_text()), sort_keys=True))
    r = smk(tiny_run, "-n", "--configfile", str(same))
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]


@pytest.mark.slow
@TINY_RUN_WORKER
def test_hyperparameter_change_reruns_only_dependants(tiny_run: Path, tmp_path: Path):
    """A logit parameter change reruns the logit student and what reads it, nothing else."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["methods"]["logit"]["params"]["tau"] = 2
    changed = tmp_path / "tau2.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    r = smk(tiny_run, "-n", "--configfile", str(changed))
    assert r.returncode == 0, r.stderr[-2000:]
    counts = job_counts(r.stdout + r.stderr)
    assert counts.get("distill") == 1 and "pretrain" not in counts, counts
    assert counts.get("evaluate") == 1 and counts.get("summarise") == 1, counts
    assert "logit/bptt/T2/seed0/model.pt" in r.stdout and "none/bptt/T2/seed0/model.pt" not in r.stdout


@pytest.mark.slow
@TINY_RUN_WORKER
def test_report_embeds_summary_table(tiny_run: Path):
    r = smk(tiny_run, "--configfile", str(TINY), "--report", "report.html")
    assert r.returncode == 0, r.stderr[-2000:]
    html = (tiny_run / "report.html").read_text()
    results = json.loads(re.search(r"var results = (\{.*?\});\n", html, re.S).group(1))
    table = results["results/summary/summary.html"]  # an HTML table the report shows inline
    embedded = base64.b64decode(table["data_uri"].split("base64,", 1)[1]).decode()
    assert embedded == (tiny_run / "results/summary/summary.html").read_text()
    assert "<td class=t>digits</td><td class=t>rt</td><td class=t>rt</td><td class=t>logit</td>" in embedded
    figures = {f"results/plots/{n}.png" for n in ("accuracy_bars", "accuracy_T", "accuracy_energy", "firing_rates",
                                                  "training_curves", "noise", "export_agreement", "resources")}
    assert figures <= set(results)
