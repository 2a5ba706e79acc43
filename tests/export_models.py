"""Small trained students for the export tests, trained once per test session.

``trained(arch)`` runs ``snnkd distill --method none`` on digits for a few seconds and
returns the model path; the result is cached for the rest of the session.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from snnkd.cli.main import main

_ROOT = Path(tempfile.mkdtemp(prefix="snnkd-export-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

RECIPES = {  # a few seconds each on two shared cores
    "vgg_tiny": ["--T", "4", "--epochs", "3", "--lr", "0.05"],
    "mnist_2conv_s": ["--T", "4", "--epochs", "2", "--lr", "0.05"],  # average pooling between spiking layers
    "resnet_tiny": ["--T", "2", "--epochs", "2", "--optimizer", "adamw", "--lr", "0.01", "--batch-size", "32",
                    "--limit-train", "500"],
}


@functools.cache
def trained(arch: str) -> Path:
    out = _ROOT / arch
    rc = main(["distill", "--student", arch, "--method", "none", "--dataset", "digits",
               "--out", str(out), "--no-progress", "--seed", "0", *RECIPES[arch]])
    assert rc == 0, f"training {arch} failed"
    return out / "model.pt"


@functools.cache
def teacher(arch: str = "vgg_tiny") -> Path:
    out = _ROOT / f"{arch}-ann"
    rc = main(["pretrain", "--model", arch, "--dataset", "digits", "--epochs", "2", "--lr", "0.05",
               "--out", str(out), "--no-progress", "--seed", "0"])
    assert rc == 0, f"training teacher {arch} failed"
    return out / "model.pt"


def scratch() -> Path:
    return Path(tempfile.mkdtemp(dir=_ROOT))
