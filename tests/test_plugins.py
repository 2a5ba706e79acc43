"""Plugins: a user's own model, method, dataset and trainer, from a real package installed
with entry points (``pip install --target``, never into the project's venv) or from a plain
module named by ``--plugin``, work in the CLI, in a checkpoint's reload and in the workflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from plugin_utils import ROOT, install_entry_point_plugin, snnkd, write_module_plugin

TINY = ROOT / "config" / "test" / "tiny.yaml"
FAST = ["--epochs", "1", "--batch-size", "32", "--T", "2", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return install_entry_point_plugin(tmp_path_factory.mktemp("plugin"))


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    return write_module_plugin(tmp_path_factory.mktemp("module_plugin"))


def test_entry_point_plugin_is_listed_in_help(site):
    r = snnkd("distill", "--help", path=site)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "demo_half_ce" in text and "demo_net" in text and "demo_blobs" in text
    assert "demo_half_ce" not in snnkd("distill", "--help").stdout  # not installed: not there


def test_entry_point_plugin_trains_and_its_checkpoint_reloads(site, tmp_path):
    """Plugin model + method + dataset + trainer in one distill; the method's default
    trainer (an attribute) is the plugin's; evaluate reloads the checkpoint."""
    out = tmp_path / "run"
    r = snnkd("distill", "--student", "demo_net", "--dataset", "demo_blobs", "--method", "demo_half_ce",
              "--param", "weight=0.25", "--out", str(out), *FAST, path=site, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["method"] == "demo_half_ce"
    rec = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["train_loss"] == pytest.approx(rec["train_ce"], rel=1e-6) and rec["train_ce"] < 0.25 * 1.6
    ev = snnkd("evaluate", "--model", str(out / "model.pt"), "--out", str(tmp_path / "eval.json"),
               "--device", "cpu", path=site, timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    rec = json.loads((tmp_path / "eval.json").read_text())
    assert rec["arch"] == "demo_net" and rec["trainer"] == "demo_bptt" and rec["test_samples"] == 32


def test_module_plugin_needs_plugin_option_to_reload(module_dir, tmp_path):
    """A plain module: unknown without --plugin (one error line naming the model, exit 2),
    usable with ``--plugin MODULE`` or ``SNNKD_PLUGINS``; the checkpoint names no code to import."""
    out = tmp_path / "ann"
    r = snnkd("--plugin", "my_snnkd_plugin", "pretrain", "--model", "mine_net", "--dataset", "mine_blobs",
              "--out", str(out), *[a for a in FAST if a not in ("--T", "2")], path=module_dir, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    evaluate = ["evaluate", "--model", str(out / "model.pt"), "--out", str(tmp_path / "e.json"), "--device", "cpu"]
    bad = snnkd(*evaluate, path=module_dir)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("snnkd: error: ") and "mine_net" in bad.stderr
    assert not (tmp_path / "e.json").exists()
    good = snnkd(*evaluate, path=module_dir, env_extra={"SNNKD_PLUGINS": "my_snnkd_plugin"})
    assert good.returncode == 0, good.stderr[-2000:]


def test_missing_plugin_module_is_one_error_line(tmp_path):
    r = snnkd("--plugin", "no_such_plugin_xyz", "distill", "--help")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "no_such_plugin_xyz" in r.stderr and r.stderr.startswith("snnkd: error: ")


def test_duplicate_name_from_a_plugin_is_refused(tmp_path):
    (tmp_path / "dup_plugin.py").write_text(
        "from snnkd.models.registry import register_model\n\n"
        "@register_model\ndef resnet_tiny(act_layer, num_classes, in_chans, img_size):\n    return None\n")
    r = snnkd("--plugin", "dup_plugin", "pretrain", "--help", path=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "model 'resnet_tiny' registered twice" in r.stderr


def _plugin_config(tmp_path: Path, prefix: str, plugins: list[str]) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    if plugins:
        cfg["plugins"] = plugins
    cfg["datasets"] = {"blobs": {"name": f"{prefix}_blobs"}}
    cfg["students"] = {"s": {"arch": f"{prefix}_net"}}
    cfg["methods"] = {"half": {"kind": f"{prefix}_half_ce"}}
    cfg["trainers"] = {"tr": {"kind": f"{prefix}_bptt"}}
    cfg["grid"] = [{"datasets": ["blobs"], "teachers": list(cfg["teachers"])[:1], "students": ["s"],
                    "methods": ["half"], "trainers": ["tr"], "T": [2], "seeds": [0]}]
    cfg.pop("export", None)
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_workflow_dry_run_with_config_plugin(module_dir, tmp_path):
    """``plugins: [my_snnkd_plugin]`` in the config: its names pass the DAG-time check."""
    import os
    env = {**os.environ, "PYTHONPATH": str(module_dir)}
    env.pop("SNNKD_PLUGINS", None)
    cfg = _plugin_config(tmp_path, "mine", ["my_snnkd_plugin"])
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                        "-n", "--configfile", str(cfg)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "distill" in r.stdout
