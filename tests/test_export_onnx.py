"""ONNX export of the ANN teacher and the time-unrolled SNN, checked with onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from export_models import scratch, teacher, trained

from snnkd.cli.inputs import model_inputs
from snnkd.cli.main import main
from snnkd.errors import SnnkdError
from snnkd.export.onnx_export import Unrolled, export_onnx, run_onnx
from snnkd.neurons import NeuronConfig
from snnkd.runtime import build, load_model

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("which", ["teacher", "vgg_tiny", "resnet_tiny"])
def test_onnxruntime_matches_torch(which: str) -> None:
    path = teacher() if which == "teacher" else trained(which)
    model, meta = load_model(path)
    x, y = model_inputs(meta, "data", "test", 100)
    rep = export_onnx(model, meta, scratch() / "m.onnx", x, y, atol=1e-4)
    assert rep["within_tolerance"], rep
    if which == "teacher":
        assert rep["max_abs_error"] <= 1e-4, rep
    else:  # a spike at threshold may flip between runtimes on at most 1% of samples
        assert rep["samples_within_tolerance"] >= 0.99 and rep["samples_differing"] <= 1, rep
    assert rep["prediction_agreement"] >= 0.99
    assert rep["prediction_agreement_vs_unfolded"] >= 0.99
    assert rep["accuracy_onnx"] > 0.3  # trained on digits for seconds: far above chance (0.1)


def test_snn_is_unrolled_over_T() -> None:
    model, meta = load_model(trained("vgg_tiny"))
    x, _ = model_inputs(meta, "data", "test", 8)
    out = scratch() / "m.onnx"
    export_onnx(model, meta, out, x, torch.zeros(8, dtype=torch.long))
    # the graph holds T copies of every spiking comparison: at T=4, 4 per neuron layer
    import onnx
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("Greater") == 4 * 2
    # a batch size other than the export example's runs (dynamic batch axis)
    np.testing.assert_allclose(run_onnx(out, x[:5]), Unrolled(model)(x[:5]).detach().numpy(), atol=1e-4)


def test_poisson_snn_takes_the_encoded_sequence() -> None:
    torch.manual_seed(0)
    model = build("vgg_tiny", NeuronConfig(threshold=0.5), 10, 1, 8, T=3, encoding="poisson", dataset="digits")
    meta = {"dataset": "digits"}
    x, y = model_inputs(meta, "data", "test", 20)
    rep = export_onnx(model, meta, scratch() / "p.onnx", x, y)
    assert rep["input"].startswith("encoded sequence") and rep["within_tolerance"]


def test_cli_and_bad_file(tmp_path) -> None:
    rc = main(["export", "--model", str(teacher()), "--to", "onnx", "--out", str(tmp_path / "t.onnx"),
               "--report", str(tmp_path / "onnx.json"), "--limit-test", "30"])
    assert rc == 0
    rep = json.loads((tmp_path / "onnx.json").read_text())
    assert rep["kind"] == "ann" and rep["max_abs_error"] <= 1e-4
    (tmp_path / "bad.onnx").write_bytes((tmp_path / "t.onnx").read_bytes()[:300])
    with pytest.raises(SnnkdError, match="not a loadable ONNX"):
        run_onnx(tmp_path / "bad.onnx", torch.zeros(1, 1, 8, 8))
