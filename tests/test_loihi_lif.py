"""LIF students on Loihi (issue 15): the leak ``beta = 1 - 1/tau`` becomes Loihi's 12-bit
voltage decay ``dv = round(4096 (1 - beta))``; the Lava run (netx for a sequential net, a
process graph for a residual one) must equal the integer emulator bit for bit and follow the
PyTorch student."""

from __future__ import annotations

import importlib.util
import json

import pytest
from export_models import scratch

from snnkd.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.skipif(importlib.util.find_spec("lava") is None, reason="Lava not installed")]


@pytest.mark.parametrize("arch,mode,extra", [
    ("vgg_tiny", "netx", ["--epochs", "3", "--lr", "0.05"]),
    ("resnet_tiny", "graph", ["--epochs", "2", "--optimizer", "adamw", "--lr", "0.01", "--limit-train", "500"]),
])
def test_lif_student_runs_in_lava(arch: str, mode: str, extra: list[str]) -> None:
    d = scratch()
    assert main(["distill", "--student", arch, "--method", "none", "--dataset", "digits", "--out", str(d / "m"),
                 "--no-progress", "--seed", "0", "--T", "4", "--neuron", "lif", "--tau", "2", *extra]) == 0
    assert main(["export", "--model", str(d / "m" / "model.pt"), "--to", "lava", "--out", str(d / "lava"),
                 "--limit-test", "40"]) == 0
    r = json.loads((d / "lava.json").read_text())
    assert r["mode"] == mode and r["output_equals_emulator"]
    hidden = {k: v for k, v in r["quantisation"].items() if k != "output" and isinstance(v, dict)}
    assert hidden and all(q["v_decay"] == 2048 for q in hidden.values())  # tau 2: beta 1/2
    assert all(lay["agreement_emulator"] == 1.0 for lay in r["layers"].values())
    assert all(lay["agreement_torch"] >= 0.9 for lay in r["layers"].values())
    assert r["prediction_agreement"] >= 0.9
