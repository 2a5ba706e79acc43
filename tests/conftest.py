"""Shared fixtures: a tiny teacher and student trained for real on digits, once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Under pytest-xdist (scripts/test.sh runs `-n auto`) each worker is one process per core:
# one thread each, for the worker and the `snnkd` commands it starts, so that N workers do
# not ask for N x cores threads.  Set before torch is imported anywhere in the worker.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--dataset", "digits", "--limit-train", "300", "--epochs", "2", "--batch-size", "32",
         "--lr", "0.05", "--no-progress"]


def snnkd(*args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run the real ``snnkd`` command in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "snnkd", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"snnkd {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A teacher (resnet_tiny_wide ANN) and two students (resnet_tiny SNN, none and logit)."""
    root = tmp_path_factory.mktemp("trained")
    snnkd("pretrain", "--model", "resnet_tiny_wide", "--out", str(root / "teacher"), *QUICK)
    snnkd("distill", "--student", "resnet_tiny", "--method", "none", "--T", "2",
          "--out", str(root / "none"), *QUICK)
    snnkd("distill", "--student", "resnet_tiny", "--teacher", str(root / "teacher" / "model.pt"),
          "--method", "logit", "--param", "tau=4", "--param", "alpha=0.9", "--T", "2",
          "--out", str(root / "logit"), *QUICK)
    return {"root": root, "teacher": root / "teacher" / "model.pt", "none": root / "none" / "model.pt",
            "logit": root / "logit" / "model.pt"}


# Fixtures of the per-method tests (tests/methods/; helpers in tests/methods/method_helpers.py).
# They live here, not in a tests/methods/conftest.py: two conftest modules would shadow each
# other for the tests that import helpers from this one.
@pytest.fixture
def pair():
    """A small student/teacher pair and a batch of inputs."""
    import torch
    from method_helpers import B, models  # tests/methods/ is on sys.path for the tests there

    s, t = models()
    torch.manual_seed(1)
    return s, t, torch.rand(B, 1, 8, 8) * 3.0


@pytest.fixture(scope="session")
def teacher_pt(tmp_path_factory) -> Path:
    """A real teacher trained for one epoch on digits."""
    from snnkd.cli.main import main

    d = tmp_path_factory.mktemp("teacher")
    rc = main(["pretrain", "--model", "resnet_tiny_wide", "--dataset", "digits", "--epochs", "1",
               "--limit-train", "256", "--limit-test", "64", "--batch-size", "64", "--out", str(d),
               "--no-progress"])
    assert rc == 0
    return d / "model.pt"


# Longest first (LPT scheduling): under pytest-xdist the last tests handed out decide when the
# run ends, so the few multi-minute tests (each a whole workflow: measured 80-180 s on 2 cores)
# start first, then the other `slow` ones, then the rest, each group in file order.
LONGEST = ("tests/test_reproduce.py::", "tests/test_slurm.py::", "tests/test_workflow_resume.py::")


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        if item.nodeid.startswith(LONGEST):
            return 0
        return 1 if item.get_closest_marker("slow") else 2
    items.sort(key=rank)  # stable: file order within each rank
