"""The one Registry: decorator registration, duplicates refused, one unknown-name error with
the known names and a close match, entry-point discovery; the five registries use it; the
workflow checks a config's names against it at DAG-build time; and a new method is one file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from snnkd.cli.main import main
from snnkd.data import DATASETS, dataset_info, list_datasets
from snnkd.encoding import ENCODERS, make_encoder
from snnkd.errors import SnnkdError
from snnkd.methods import METHODS, Method, get_method, register_method
from snnkd.models import create_model, list_models
from snnkd.models.registry import MODELS
from snnkd.registry import DuplicateName, Registry, UnknownName, registries
from snnkd.train.trainers import TRAINERS, get_trainer, list_trainers, register_trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "config" / "test" / "tiny.yaml"


# ---------------------------------------------------------------- the Registry itself
def test_register_by_decorator_and_lookup():
    reg: Registry = Registry("widget")

    @reg.register()
    def round_one():
        return 1

    @reg.register(fast=True)
    class Square:
        name = "square"

    assert reg.names() == ["round_one", "square"] and list(reg) == reg.names()
    assert reg["round_one"] is round_one and reg["square"].fast is True and "square" in reg


def test_duplicate_names_are_refused():
    reg: Registry = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(DuplicateName, match="widget 'a' registered twice"):
        reg.add("a", 2)
    assert reg["a"] == 1
    with pytest.raises(SnnkdError, match="non-empty name"):
        reg.add("", 3)


def test_unknown_name_lists_the_known_ones_with_a_close_match():
    reg: Registry = Registry("widget")
    for name in ("sprocket", "gear", "cog"):
        reg.add(name, name)
    with pytest.raises(UnknownName) as e:
        reg["sprockett"]
    assert str(e.value) == "unknown widget 'sprockett' (did you mean 'sprocket'?); choose one of cog, gear, sprocket"
    assert isinstance(e.value, SnnkdError) and isinstance(e.value, KeyError)
    with pytest.raises(UnknownName, match=r"unknown widget 'zzz'; choose one"):  # no close match, no hint
        reg["zzz"]


def test_entry_points_are_discovered(tmp_path, monkeypatch):
    """A distribution's entry point in the group is imported on first use; an entry point
    naming an object registers it under the entry point's name."""
    dist = tmp_path / "widgets_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: widgets-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[test.widgets]\nmine = widget_mod:make\nmod = widget_mod\n")
    (tmp_path / "widget_mod.py").write_text("def make():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry = Registry("widget", group="test.widgets")
    assert reg.names() == ["mine"] and reg["mine"]() == 42


def test_broken_entry_point_is_one_clear_error(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[test.broken]\nx = no_such_module_abc\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SnnkdError, match="plugin entry point x = no_such_module_abc .*failed to load"):
        Registry("widget", group="test.broken").names()


# ---------------------------------------------------------------- the five registries
def test_every_registry_is_one_registry_type():
    regs = registries()
    assert set(regs) == {"model", "method", "trainer", "dataset", "encoder"}
    assert all(isinstance(r, Registry) for r in regs.values())
    assert regs["model"] is MODELS and regs["method"] is METHODS and regs["trainer"] is TRAINERS
    assert regs["dataset"] is DATASETS and regs["encoder"] is ENCODERS
    assert {"resnet_tiny", "vgg_tiny"} <= set(list_models())
    assert {"none", "logit", "blockwise"} <= set(METHODS) and {"bptt", "rate"} <= set(list_trainers())
    assert "cifar10_dvs" in list_datasets() and ENCODERS.names() == ["direct", "poisson"]


@pytest.mark.parametrize("lookup, message", [
    (lambda: create_model("resnet_tinyy"), "unknown model 'resnet_tinyy' (did you mean 'resnet_tiny'?)"),
    (lambda: get_method("logitt"), "unknown method 'logitt' (did you mean 'logit'?)"),
    (lambda: get_trainer("bpt"), "unknown trainer 'bpt' (did you mean 'bptt'?)"),
    (lambda: dataset_info("cifar11"), "unknown dataset 'cifar11' (did you mean 'cifar10'?)"),
    (lambda: make_encoder("poison"), "unknown encoding 'poison' (did you mean 'poisson'?)"),
], ids=["model", "method", "trainer", "dataset", "encoder"])
def test_one_unknown_name_error_everywhere(lookup, message):
    with pytest.raises(UnknownName) as e:
        lookup()
    assert str(e.value).startswith(message)


def test_trainers_and_methods_refuse_a_second_registration():
    """A trainer name was silently overwritten before; a method with the name of another too."""
    with pytest.raises(DuplicateName, match="trainer 'bptt' registered twice"):
        register_trainer("bptt")(lambda *a: None)
    assert get_trainer("bptt").ddp_safe

    class Again(Method):
        name = "logit"
    with pytest.raises(DuplicateName, match="method 'logit' registered twice"):
        register_method(Again)

    class Nameless(Method):
        pass
    with pytest.raises(SnnkdError, match="non-empty name"):
        register_method(Nameless)


def test_capabilities_are_attributes():
    assert get_trainer("bptt").ddp_safe is True and get_trainer("rate").ddp_safe is False
    assert get_method("blockwise").default_trainer == "rate" and get_method("logit").default_trainer == "bptt"
    assert [n for n, cls in METHODS.items() if not cls.needs_teacher] == ["none"]


def test_poisson_encoder_gets_the_data_normalisation():
    enc = make_encoder("poisson", (0.5,), (0.25,))
    x = torch.full((2, 1, 2, 2), -2.0)  # (-2 * 0.25 + 0.5) = 0: never fires
    assert enc(x, 3).sum() == 0 and enc.mean == (0.5,)
    assert make_encoder("direct")(torch.ones(1, 1, 2, 2), 3).shape == (3, 1, 1, 2, 2)


def test_dataset_help_lists_every_registered_dataset(capsys):
    """cli/common.py hard-coded the list (and missed cifar10_dvs)."""
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"dataset name: {', '.join(list_datasets())}" in text


def test_typo_in_model_name_is_one_line_with_a_hint(tmp_path, capsys):
    rc = main(["pretrain", "--model", "resnet_tinyy", "--dataset", "digits", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "did you mean 'resnet_tiny'?" in err
    assert not (tmp_path / "o" / "model.pt").exists()


# ---------------------------------------------------------------- the workflow's DAG-time check
def _smk(workdir: Path, config: Path, snakefile: Path = ROOT / "Snakefile", env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), "-n",
                           "--configfile", str(config)], capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("section, key, bad, kind", [
    ("students", "arch", "resnet_tinny", "model"),
    ("datasets", "name", "digitz", "dataset"),
    ("methods", "kind", "logitt", "method"),
    ("trainers", "kind", "bptt2", "trainer"),
], ids=["architecture", "dataset", "method-kind", "trainer-kind"])
def test_typo_in_config_fails_dry_run_naming_it(tmp_path, section, key, bad, kind):
    cfg = yaml.safe_load(TINY.read_text())
    variant = next(iter(cfg[section]))
    cfg[section][variant][key] = bad
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = _smk(tmp_path, path)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    lines = [line for line in out.splitlines() if f"unknown {kind} {bad!r}" in line]
    assert len(lines) == 1, out[-3000:]
    assert lines[0].startswith(f"config: {section}.{variant}.{key}: unknown {kind} {bad!r}")
    assert "choose one of" in lines[0]
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- a new method is one file
THROWAWAY = '''"""``throwaway``: a method added as one file (test only)."""

import torch.nn.functional as F

from snnkd.methods.base import Method, MethodOutput, register_method


@register_method
class Throwaway(Method):
    name = "throwaway"
    needs_teacher = False

    def __init__(self, student, teacher, scale: float = 2.0) -> None:
        super().__init__(student, teacher)
        self.scale = float(scale)

    def forward(self, student, teacher, x, y) -> MethodOutput:
        logits = student(x)
        return MethodOutput(logits, {"ce2": self.scale * F.cross_entropy(logits, y)})
'''


def _copy_tree(dst: Path) -> None:
    """The checkout's files (tracked, and new ones git does not ignore) copied to ``dst``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


@pytest.mark.slow
def test_a_new_method_is_one_file(tmp_path):
    """Add snnkd/methods/throwaway.py to a copy of the package: --help lists it, distill runs
    it (teacher-less, from its attribute), and the workflow's dry run accepts kind throwaway
    and plans it without a teacher."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to copy")
    copy = tmp_path / "copy"
    _copy_tree(copy)
    (copy / "snnkd" / "methods" / "throwaway.py").write_text(THROWAWAY)
    env = {**{k: v for k, v in os.environ.items() if k != "SNNKD_PLUGINS"}, "PYTHONPATH": str(copy)}

    def run(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "snnkd", *a], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=600)
    help_text = " ".join(run("distill", "--help").stdout.split())
    assert "throwaway" in help_text
    assert "throwaway" not in " ".join(subprocess.run([sys.executable, "-m", "snnkd", "distill", "--help"],
                                                      capture_output=True, text=True).stdout.split())
    out = tmp_path / "run"
    r = run("distill", "--method", "throwaway", "--student", "resnet_tiny", "--dataset", "digits", "--epochs", "1",
            "--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--T", "2", "--out", str(out),
            "--no-progress", "--device", "cpu")
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"train_ce2"' in (out / "metrics.jsonl").read_text()
    cfg = yaml.safe_load(TINY.read_text())
    cfg["methods"] = {"tw": {"kind": "throwaway", "params": {"scale": 3.0}}}
    for block in cfg["grid"]:
        block["methods"] = ["tw"]
    path = tmp_path / "throwaway.yaml"
    path.write_text(yaml.safe_dump(cfg))
    wd = tmp_path / "wd"
    wd.mkdir()
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(copy / "Snakefile"), "-d", str(wd), "-n",
                          "-p", "--configfile", str(path)], capture_output=True, text=True, timeout=600, env=env,
                         cwd=copy)
    text = dry.stdout + dry.stderr
    assert dry.returncode == 0, text[-3000:]
    assert "--method throwaway" in text and "--param scale=3.0" in text
    assert "results/distill/digits/none/" in text  # teacher-less: from needs_teacher, no list to edit


def test_exported_plugins_reach_child_processes(monkeypatch):
    """What the workflow does with its config's plugins: import them and export SNNKD_PLUGINS."""
    from snnkd.registry import PLUGIN_ENV, load_plugins, plugin_modules
    monkeypatch.setenv(PLUGIN_ENV, "json")
    load_plugins(["string", "json"], export=True)
    assert os.environ[PLUGIN_ENV] == "json,string" and plugin_modules(["csv"]) == ["json", "string", "csv"]
    r = subprocess.run([sys.executable, "-c", "import os; print(os.environ['SNNKD_PLUGINS'])"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "json,string"
