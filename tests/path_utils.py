"""Shared by the path-safety tests: a tree's fingerprint, "refused with one line, nothing
touched", real checkpoints written by ``save_model``, and a guard that fails a test when
work starts before the paths were checked."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from snnkd.cli.main import main
from snnkd.neurons import NeuronConfig
from snnkd.runtime import build, model_meta, save_model


def tree_state(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file's SHA-256, ``dir`` or ``link -> target``."""
    out = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink():
            out[key] = f"link -> {os.readlink(p)}"
        elif p.is_dir():
            out[key] = "dir"
        else:
            out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(argv: list, root: Path, capsys, *words: str, status: int = 2) -> str:
    """``snnkd ARGV`` exits ``status`` with exactly one error line holding ``words`` and
    leaves everything under ``root`` as it was (no input changed, nothing written)."""
    before = tree_state(root)
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert rc == status, (rc, err)
    assert len(lines) == 1 and lines[0].startswith("snnkd: error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert tree_state(root) == before, "a refused command changed or wrote files"
    return lines[0]


def ann_file(path: Path) -> Path:
    model = build("resnet_tiny", None, 10, 1, 8)
    save_model(path, model, model_meta(model, "digits", None))
    return path


def snn_file(path: Path) -> Path:
    model = build("resnet_tiny", NeuronConfig(), 10, 1, 8, T=2)
    save_model(path, model, model_meta(model, "digits", NeuronConfig()))
    return path


def make_models(d: Path) -> dict[str, Path]:
    """An ANN and an SNN checkpoint in ``d`` (the test files' ``models`` fixture)."""
    return {"ann": ann_file(d / "ann.pt"), "snn": snn_file(d / "snn.pt")}


def run_dir(root: Path, models: dict[str, Path], kind: str = "ann") -> Path:
    """A finished training run ``root/R``: model.pt, metrics.jsonl, config.yaml."""
    r = root / "R"
    r.mkdir()
    shutil.copy(models[kind], r / "model.pt")
    (r / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')
    (r / "config.yaml").write_text("epochs: 1\n")
    return r


def forbid_work(monkeypatch) -> None:
    """Make loading data or a model fail the test: refusals must come before any work
    (the test files' ``no_work`` fixture)."""
    def forbidden(*_a, **_k):
        raise AssertionError("work started before the paths were refused")
    import snnkd.cli.distill
    import snnkd.cli.energy
    import snnkd.cli.evaluate
    import snnkd.cli.export
    import snnkd.cli.pretrain
    for mod in (snnkd.cli.pretrain, snnkd.cli.distill):
        monkeypatch.setattr(mod, "load_data", forbidden)
    for mod in (snnkd.cli.distill, snnkd.cli.evaluate, snnkd.cli.export, snnkd.cli.energy):
        monkeypatch.setattr(mod, "load_model", forbidden)
