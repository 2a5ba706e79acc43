"""NIR export: graph structure, file round trip, re-import agreement, bad files."""

from __future__ import annotations

import json

import h5py
import nir
import numpy as np
import pytest
import torch
from export_models import scratch, trained

from snnkd.cli.inputs import model_inputs
from snnkd.cli.main import main
from snnkd.errors import SnnkdError
from snnkd.export import nir_check as nc
from snnkd.export.deploy import deploy_copy, fold_bn
from snnkd.export.nir_export import to_nir, write_nir
from snnkd.export.nir_pipeline import export_nir
from snnkd.runtime import load_model

pytestmark = pytest.mark.timeout(300)


def test_fold_bn_matches_conv_then_bn() -> None:
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 5, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(5)
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(4, 3, 9, 9)
    assert torch.allclose(fold_bn(conv, bn)(x), bn(conv(x)), atol=1e-5)


@pytest.mark.parametrize("arch", ["vgg_tiny", "resnet_tiny"])
def test_nir_round_trip_and_reimport_agree(arch: str) -> None:
    model, meta = load_model(trained(arch))
    x, y = model_inputs(meta, "data", "test", 48)
    out = scratch() / "m.nir"
    rep = export_nir(model, meta, out, x, y)
    graph = nir.read(str(out))
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert {"Input", "Output", "Conv2d", "IF", "Affine", "Flatten"} <= kinds
    assert not any("Batch" in k for k in kinds)
    for node in graph.nodes.values():
        if isinstance(node, nir.IF):
            assert node.metadata["reset"] == "hard"
            np.testing.assert_allclose(node.v_threshold, 1.0)
            np.testing.assert_allclose(node.r * graph.metadata["dt"], 1.0, rtol=1e-6)
    assert rep["round_trip_equal"]
    # BatchNorm folding changes float rounding only: spikes agree almost everywhere,
    # predictions everywhere, on real test digits
    for reader in ("nirtorch", "spikingjelly"):
        r = rep[reader]
        assert r["spike_agreement"] > 0.9999, (reader, r)
        assert r["prediction_agreement"] == 1.0, (reader, r)
        assert r["logits_max_abs_error"] < 0.05, (reader, r)
    assert rep["nirtorch"]["accuracy"] == rep["nirtorch"]["accuracy_reference"]


def test_residual_additions_are_edges() -> None:
    model, meta = load_model(trained("resnet_tiny"))
    g = to_nir(model, meta)
    into = lambda n: sorted(src for src, dst in g.edges if dst == n)  # noqa: E731
    # identity shortcut: the stem's neurons feed both conv1 and the block's output neurons
    assert into("stages_layer1_0_act2") == ["stages_layer1_0_conv2_0", "stem_2"]
    # projection shortcut: a 1x1 conv (BN folded) on the block input joins conv2
    assert into("stages_layer2_0_act2") == ["stages_layer2_0_conv2_0", "stages_layer2_0_shortcut_0"]
    assert g.nodes["stages_layer2_0_shortcut_0"].weight.shape[-2:] == (1, 1)
    assert isinstance(g.nodes["pool"], nir.AvgPool2d)


def test_lif_and_soft_reset_are_recorded() -> None:
    from snnkd.neurons import NeuronConfig
    from snnkd.runtime import build
    torch.manual_seed(0)
    m = build("vgg_tiny", NeuronConfig(kind="lif", decay=0.75, reset="soft"), 10, 1, 8, T=3)
    deploy_copy(m)  # BN of an untrained net folds too
    g = to_nir(m)
    lif = [n for n in g.nodes.values() if isinstance(n, nir.LIF)]
    assert lif and g.metadata["reset"] == "soft"
    dt = g.metadata["dt"]
    np.testing.assert_allclose(lif[0].tau, dt / 0.25, rtol=1e-6)   # beta = 1 - dt/tau
    np.testing.assert_allclose(lif[0].r, 4.0, rtol=1e-6)           # r = tau/dt
    assert lif[0].metadata["reset"] == "soft"


def test_ann_is_refused() -> None:
    from snnkd.runtime import build
    with pytest.raises(SnnkdError, match="needs an SNN"):
        to_nir(build("vgg_tiny", None, 10, 1, 8))


def test_bad_nir_files_give_one_error(tmp_path, capsys) -> None:
    model, meta = load_model(trained("vgg_tiny"))
    good = tmp_path / "good.nir"
    write_nir(to_nir(model, meta), good)
    data = good.read_bytes()
    (tmp_path / "trunc.nir").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.nir").write_text("not a graph\n")
    with h5py.File(tmp_path / "foreign.nir", "w") as f:
        f["x"] = np.arange(3)
    for name in ("trunc.nir", "text.nir", "foreign.nir", "missing.nir"):
        with pytest.raises(SnnkdError):
            nc.read_nir(tmp_path / name)
    assert nc.read_nir(good).nodes


def test_cli_export_nir(tmp_path, capsys) -> None:
    rc = main(["export", "--model", str(trained("vgg_tiny")), "--to", "nir", "--out", str(tmp_path / "m.nir"),
               "--report", str(tmp_path / "nir.json"), "--limit-test", "40", "--no-third-party"])
    assert rc == 0
    rep = json.loads((tmp_path / "nir.json").read_text())
    assert rep["nirtorch"]["spike_agreement"] > 0.9999 and rep["test_samples"] == 40
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
