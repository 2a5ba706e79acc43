"""The reproduction configs (config/reproduce/*.yaml): each states its schedule, dry-runs as
shipped (tests/test_workflow.py dry-runs every config), and its fast version - the same
grid with a tiny schedule on synthetic MNIST-format data - really runs through the
workflow and writes the "beside the papers" table.  The real reproductions are not run here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mnist_files import write_mnist_idx

from snnkd.methods import get_method

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "config" / "reproduce").glob("*.yaml"))


def fast_version(cfg: dict, data_root: Path) -> dict:
    """The same grid with one epoch on 200 training images and 100 test images (exports
    checked on 16 of them)."""
    fast = yaml.safe_load(yaml.safe_dump(cfg))
    fast["data_root"] = str(data_root)
    for d in fast["datasets"].values():
        d.update(limit_train=200, limit_test=100)
    for t in fast["teachers"].values():
        t.setdefault("train", {})["epochs"] = 1
        if "limit_train" in t:  # a teacher on more data than its students: 400 images here
            t["limit_train"] = 400
    fast.setdefault("distill", {})["epochs"] = 1
    for block in fast["grid"]:
        block["seeds"] = block["seeds"][:1]
    if any(v for k, v in fast.get("export", {}).items() if k in ("nir", "onnx", "lava")):
        fast["export"]["limit_test"] = 16  # Lava runs about 0.4 s per image
    return fast


def test_there_are_reproduction_configs_with_a_stated_schedule() -> None:
    assert {"kdsnn_mnist_tab4", "fmnist_methods", "blockwise_rate_vs_bptt"} <= {c.stem for c in CONFIGS}
    for path in CONFIGS:
        text = path.read_text()
        header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
        for word in ("differs from the paper", "schedule", "snakemake --configfile"):
            assert word in header, f"{path.name}: its header does not state {word!r}"
        cfg = yaml.safe_load(text)
        assert all("paper" in block for block in cfg["grid"]), f"{path.name}: a block without paper figures"


FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST",  # torchvision's folders; the same IDX format
           **{f"mnist_{v}": "MNIST" for v in ("background", "random_noise", "rotation", "rotation_background")}}


def prepare(path: Path, tmp_path: Path) -> tuple[dict, Path]:
    """The fast version of ``path`` over synthetic data in ``tmp_path``: (config, its file)."""
    cfg = yaml.safe_load(path.read_text())
    names = {d["name"] for d in cfg["datasets"].values()}
    if not names <= set(FOLDERS):
        pytest.fail(f"{path.name}: the fast version knows how to fake {sorted(FOLDERS)} only, not {names}")
    for folder in sorted({FOLDERS[name] for name in names}):  # the MNIST variants share MNIST's files
        write_mnist_idx(tmp_path / "data", n_train=400, n_test=150, folder=folder)
    conf = tmp_path / "fast.yaml"
    conf.write_text(yaml.safe_dump(fast_version(cfg, tmp_path / "data")))
    return cfg, conf


def snakemake(tmp_path: Path, conf: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "run"),
                           "--configfile", str(conf), *args], capture_output=True, text=True, timeout=850)


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_fast_version_dry_runs(path: Path, tmp_path: Path) -> None:
    cfg, conf = prepare(path, tmp_path)
    r = snakemake(tmp_path, conf, "-n")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # one seed each; a teacherless method (`none`) is one run whatever the block's teacher
    runs = len({(d, t if get_method(cfg["methods"][m]["kind"]).needs_teacher else None, s, m, tr, T)
                for b in cfg["grid"] for d in b["datasets"] for t in b["teachers"] for s in b["students"]
                for m in b["methods"] for tr in b["trainers"] for T in b["T"]})
    assert re.search(rf"^distill\s+{runs}$", r.stdout + r.stderr, re.M), (r.stdout + r.stderr)[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", [ROOT / "config" / "reproduce" / "kdsnn_mnist_tab4.yaml"], ids=lambda p: p.stem)
def test_fast_version_runs_and_writes_the_paper_table(path: Path, tmp_path: Path) -> None:
    cfg, conf = prepare(path, tmp_path)
    wd = tmp_path / "run"
    r = snakemake(tmp_path, conf, "--cores", "2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    md = (wd / "results/summary/summary.md").read_text()
    assert "## Beside the papers" in md
    table = md.split("## Beside the papers", 1)[1]
    block = cfg["grid"][0]
    for method, figure in block["paper"].get("accuracy", {}).items():
        if figure is not None:
            row = next(line for line in table.splitlines() if f"| {method} |" in line and "| accuracy |" in line)
            assert f"| {figure:.2f} |" in row, row
    kd = [m for m in block["methods"] if cfg["methods"][m]["kind"] != "none"]
    for method in kd:  # every KD row carries its difference to the direct baseline
        row = next(line for line in table.splitlines() if f"| {method} |" in line and "| accuracy |" in line)
        assert "(n=1)" in row, row
    papers = (wd / "results/summary/papers.html").read_text()
    assert block["paper"]["source"] in papers and "p (paired t)" in papers
    run = next((wd / "results/evaluate/distill").rglob("eval.json"))
    assert json.loads(run.read_text())["T"] == block["T"][0]
