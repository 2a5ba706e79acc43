"""Operation counts on the exported graph against snnkd.ops, and energy per target."""

from __future__ import annotations

import json

import pytest
from export_models import teacher, trained

from snnkd.cli.inputs import model_inputs
from snnkd.cli.main import main
from snnkd.energy import price
from snnkd.export import nir_check as nc
from snnkd.export.energy import (
    compare_with_torch,
    energy_targets,
    graph_counts,
    price_targets,
)
from snnkd.export.nir_export import to_nir
from snnkd.ops import count_ops
from snnkd.runtime import load_model

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("arch", ["vgg_tiny", "resnet_tiny"])
def test_graph_counts_match_pytorch_counts(arch: str) -> None:
    model, meta = load_model(trained(arch))
    x, _ = model_inputs(meta, "data", "test", 32)
    graph = to_nir(model, meta)
    counts = graph_counts(graph, model.encoder(x, model.T))
    check = compare_with_torch(model, x, counts)
    assert check["max_rel_diff"] < 1e-6 and check["neuron_updates_rel_diff"] == 0.0, check
    kinds = {n: r.input for n, r in counts.layers.items()}
    first = next(iter(counts.layers.values()))
    assert first.input == "real" and first.macs > 0 and first.synops == 0 and 0 < first.events <= first.macs
    assert counts.synops > 0
    # the PyTorch hooks classify every layer's input the same way as the graph
    torch_kinds = {nc.spike_key(n): r.input for n, r in count_ops(model, [(x, None)]).layers.items()}
    assert torch_kinds == {nc.spike_key(n): k for n, k in kinds.items()}
    if arch == "resnet_tiny":
        assert kinds["fc"] == "pooled spikes"
        # pooled input: events = spikes of the last neuron layer x fan-out (10 classes)
        _, spikes = nc.run_reference(model, model.encoder(x, model.T))
        n_spikes = float(spikes["stages_layer2_0_act2"].sum()) / len(x)
        fc = counts.layers["fc"]
        assert fc.events == pytest.approx(10 * n_spikes, rel=1e-6)
        # ... and on the digital baseline they are accumulates (SynOps), not MACs
        assert fc.synops == pytest.approx(10 * n_spikes, rel=1e-6) and fc.macs == 0
    else:
        assert kinds["fc"] == "spikes"


def test_energy_formulas_use_the_configured_figures() -> None:
    model, meta = load_model(trained("vgg_tiny"))
    x, _ = model_inputs(meta, "data", "test", 32)
    counts = graph_counts(to_nir(model, meta), model.encoder(x, model.T))
    targets = energy_targets()
    tcounts = count_ops(load_model(teacher())[0], [(x, None)])
    e = price_targets(counts, targets, tcounts)
    c45, lo = targets["cmos45nm"], targets["loihi"]
    L = counts.layers.values()
    syn, mac, ev = (sum(getattr(r, k) for r in L) for k in ("synops", "macs", "events"))
    assert e["cmos45nm"]["snn_pj"] == pytest.approx(mac * c45["mac_pj"] + syn * c45["ac_pj"])
    assert e["cmos45nm"]["teacher_pj"] == pytest.approx(tcounts.macs * c45["mac_pj"])
    assert e["cmos45nm"]["ann_same_arch_pj"] == pytest.approx(sum(r.dense_macs for r in L) * c45["mac_pj"])
    nu = counts.neuron_updates + 10 * model.T
    assert e["loihi"]["snn_pj"] == pytest.approx(ev * lo["ac_pj"] + nu * lo["neuron_update_pj"])
    assert e["loihi"]["teacher_pj"] is None and price(tcounts, lo)["total_pj"] is None  # no ANN on Loihi
    assert sum(e["loihi"]["per_layer_pj"].values()) == pytest.approx(ev * lo["ac_pj"])
    assert "Davies" in lo["source"] and "Horowitz" in c45["source"]


def test_cli_energy_and_bad_nir(tmp_path, capsys) -> None:
    out = tmp_path / "energy.json"
    rc = main(["energy", "--model", str(trained("vgg_tiny")), "--teacher", str(teacher()), "--out", str(out),
               "--table", str(tmp_path / "energy.md"), "--limit-test", "32"])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["teacher_macs"] > 0 and r["torch_check"]["max_rel_diff"] < 1e-6
    md = (tmp_path / "energy.md").read_text()
    assert "| cmos45nm |" in md and "| loihi |" in md and "stages_block2_0" in md
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    capsys.readouterr()
    assert main(["energy", "--model", str(trained("vgg_tiny")), "--nir", str(bad), "--out", str(tmp_path / "e2.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("snnkd: error:") and "NIR" in err[0]
    assert not (tmp_path / "e2.json").exists()
