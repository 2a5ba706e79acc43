"""Bad NIR and HDF5 files given to ``snnkd energy --nir`` and ``snnkd export --to lava
--nir/--netx``: truncated, random bytes, HDF5 that is not NIR/netx, and foreign graphs
(another architecture's graph, a graph with a neuron type snnkd does not build).

Same check as tests/test_bad_input.py: exit != 0, one ``snnkd: error:`` line naming the
problem, no traceback, no output written.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
from bad_input_utils import expect_error

from snnkd.export.nir_export import to_nir, write_nir
from snnkd.neurons import NeuronConfig
from snnkd.runtime import build, model_meta, save_model


def snn(arch: str):
    model = build(arch, NeuronConfig(), 10, 1, 8, T=2)
    return model, model_meta(model, "digits", NeuronConfig())


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("export_inputs")
    model, meta = snn("resnet_tiny")
    save_model(d / "snn.pt", model, meta)
    write_nir(to_nir(model, meta), d / "good.nir")
    raw = (d / "good.nir").read_bytes()
    (d / "truncated.nir").write_bytes(raw[: len(raw) // 2])
    (d / "random.nir").write_bytes(os.urandom(5000))
    with h5py.File(d / "foreign.h5", "w") as f:
        f["x"] = np.arange(5)
    vgg, vmeta = snn("vgg_tiny")
    write_nir(to_nir(vgg, vmeta), d / "other_arch.nir")
    n = 64
    cuba = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([n])),
                               "cuba": nir.CubaLIF(tau_syn=np.full(n, 0.01), tau_mem=np.full(n, 0.02), r=np.ones(n),
                                                   v_leak=np.zeros(n), v_threshold=np.ones(n)),
                               "output": nir.Output(output_type=np.array([n]))},
                        edges=[("input", "cuba"), ("cuba", "output")])
    write_nir(cuba, d / "cuba.nir")
    return {p.name: p for p in d.iterdir()}


NIR_CASES = [
    ("truncated.nir", ["truncated.nir", "truncated"]),
    ("random.nir", ["random.nir", "not a NIR file"]),
    ("foreign.h5", ["foreign.h5", "not a NIR graph"]),
    ("missing.nir", ["missing.nir", "not found"]),
    ("other_arch.nir", ["missing from the exported graph"]),
]
CUBA_ENERGY = pytest.param("cuba.nir", ["cuba.nir", "CubaLIF"])


@pytest.mark.parametrize("name,names", [*NIR_CASES, CUBA_ENERGY],
                         ids=[*(c[0] for c in NIR_CASES), "cuba.nir"])
def test_bad_nir_for_energy(files, tmp_path, capsys, name, names):
    path = files.get(name, files["good.nir"].parent / name)
    expect_error(["energy", "--model", files["snn.pt"], "--nir", path, "--out", tmp_path / "e.json",
                  "--limit-test", "8"], tmp_path, capsys, *names)


@pytest.mark.parametrize("option,name,names", [
    pytest.param("--nir", "truncated.nir", ["truncated.nir", "truncated"]),
    pytest.param("--nir", "random.nir", ["random.nir", "not a NIR file"]),
    pytest.param("--netx", "truncated.nir", ["truncated.nir", "not a readable netx"]),
    pytest.param("--netx", "random.nir", ["random.nir", "not a netx network"]),
    pytest.param("--netx", "foreign.h5", ["foreign.h5", "not a netx network"]),
], ids=["nir-truncated", "nir-random", "netx-truncated", "netx-random", "netx-foreign-hdf5"])
def test_bad_nir_or_netx_for_lava(files, tmp_path, capsys, option, name, names):
    expect_error(["export", "--to", "lava", "--model", files["snn.pt"], option, files[name],
                  "--out", tmp_path / "lava", "--limit-test", "4"], tmp_path, capsys, *names)
