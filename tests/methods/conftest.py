"""Fixtures of the per-method tests (helpers: method_helpers.py)."""

from __future__ import annotations

import pytest
import torch
from method_helpers import B, models

from snnkd.cli.main import main


@pytest.fixture
def pair():
    s, t = models()
    torch.manual_seed(1)
    x = torch.rand(B, 1, 8, 8) * 3.0
    return s, t, x


@pytest.fixture(scope="session")
def teacher_pt(tmp_path_factory):
    d = tmp_path_factory.mktemp("teacher")
    rc = main(["pretrain", "--model", "resnet_tiny_wide", "--dataset", "digits", "--epochs", "1",
               "--limit-train", "256", "--limit-test", "64", "--batch-size", "64", "--out", str(d),
               "--no-progress"])
    assert rc == 0
    return d / "model.pt"
