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


def test_batched_checks_equal_one_batch() -> None:
    """The NIR and ONNX checks run batch by batch (bounded memory for a whole test set):
    the report is the same whatever the batch size, and the counts cover every sample."""
    from snnkd.export.onnx_export import export_onnx

    model, meta = load_model(trained("resnet_tiny"))
    x, y = model_inputs(meta, "data", "test", 50)
    d = scratch()
    one = export_nir(model, meta, d / "a.nir", x, y, batch=1000)
    many = export_nir(model, meta, d / "b.nir", x, y, batch=7)
    for reader in ("nirtorch", "spikingjelly"):
        if "spike_agreement" in one.get(reader, {}):
            assert many[reader] == one[reader]  # ratios of integer counts: exactly equal
    spikes = sum(int(np.prod(s.shape)) for s in nc.run_reference(model, model.encoder(x, model.T))[1].values())
    assert one["nirtorch"]["spikes_compared"] == spikes == many["nirtorch"]["spikes_compared"]
    o1 = export_onnx(model, meta, d / "a.onnx", x, y, batch=1000)
    o2 = export_onnx(model, meta, d / "b.onnx", x, y, batch=7)
    keys = ("max_abs_error", "samples_differing", "prediction_agreement", "accuracy_onnx", "accuracy_torch")
    assert {k: o2[k] for k in keys} == pytest.approx({k: o1[k] for k in keys}, abs=1e-6)


def test_agreement_over_batches_equals_agreement_over_all() -> None:
    g = torch.Generator().manual_seed(0)
    T, B = 4, 30
    ref = (torch.randn(T, B, 10, generator=g), {"a": (torch.rand(T, B, 6, generator=g) > 0.5).float()})
    other = (ref[0] + 0.3 * torch.randn(T, B, 10, generator=g),
             {"a": torch.where(torch.rand(T, B, 6, generator=g) > 0.9, 1 - ref[1]["a"], ref[1]["a"])})
    labels = torch.randint(0, 10, (B,), generator=g)
    whole = nc.agreement(ref, other, labels)
    acc = nc.Agreement()
    for i in range(0, B, 8):
        sl = slice(i, i + 8)
        acc.add((ref[0][:, sl], {"a": ref[1]["a"][:, sl]}), (other[0][:, sl], {"a": other[1]["a"][:, sl]}), labels[sl])
    got = acc.result()
    per_layer = got.pop("spike_agreement_per_layer")
    assert per_layer["a"] == pytest.approx(whole.pop("spike_agreement_per_layer")["a"])
    assert got == pytest.approx(whole)
    assert 0.85 < whole["spike_agreement"] < 0.95 and whole["prediction_agreement"] < 1


def test_export_shows_a_bar_over_the_check_batches(monkeypatch, capsys) -> None:
    """On a terminal the per-sample check shows its batches with an ETA (360 digits: 2 of 200)."""
    from snnkd.cli import progress

    monkeypatch.setattr(progress, "enabled", lambda a: not a.no_progress)  # as on a terminal
    out = scratch() / "bar.nir"
    assert main(["export", "--model", str(trained("vgg_tiny")), "--to", "nir", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "export: checking nir: 2/2" in err and "ETA" in err, err[-500:]
    assert json.loads(out.with_suffix(".nir.json").read_text())["test_samples"] == 360
