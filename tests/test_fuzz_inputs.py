"""Property-based fuzzing of the untrusted-file readers (issue 16: keep items 8, 9 and 11 closed).

* checkpoint metadata and weights: a good digits checkpoint with random keys replaced by
  random values (any type: huge or negative ints, NaN, strings, lists, dicts, tensors) or
  removed, and random weights changed (dtype, shape, NaN, name type): ``load_model`` either
  returns a model whose metadata passes the schema, or raises ``SnnkdError``;
* NIR node attributes: a good ``.nir`` with one dataset replaced by a random array (dtype,
  shape, values) or deleted: ``read_nir`` either returns a graph that nirtorch rebuilds and
  runs for two steps, or raises ``SnnkdError``.

Never another exception.  ``SNNKD_HYPOTHESIS_EXAMPLES`` sets the number of examples.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import nir
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnkd import io
from snnkd.errors import SnnkdError
from snnkd.models import StagedNet
from snnkd.neurons import NeuronConfig
from snnkd.runtime import META_KEYS, build, load_model, model_meta

SETTINGS = settings(max_examples=int(os.environ.get("SNNKD_HYPOTHESIS_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

SNN = build("resnet_tiny", NeuronConfig(), 10, 1, 8, T=2)
SNN_META = {**model_meta(SNN, "digits", NeuronConfig()), "method": "logit", "trainer": "bptt",
            "params": {"tau": 4}, "test_acc": 50.0, "epochs": 2}
STATE = SNN.state_dict()

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([0, 1, 2, 8, 10, 1024, 2**34])
           | st.floats() | st.text(max_size=12) | st.sampled_from(["resnet_tiny", "vgg_tiny", "digits", "mnist",
                                                                  "snn", "ann", "poisson", "if", "lif"]))
tensors = st.builds(lambda n, dt: torch.zeros(n, dtype=dt), st.integers(0, 4),
                    st.sampled_from([torch.float32, torch.int64, torch.complex64, torch.bool]))
values = st.recursive(scalars | tensors, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=3), max_leaves=8)
neuron_values = st.fixed_dictionaries({}, optional={
    "kind": scalars, "threshold": scalars, "decay": scalars, "tau": scalars, "reset": scalars,
    "detach_reset": scalars, "surrogate": scalars, "width": scalars, "bogus": scalars})
meta_keys = st.sampled_from([*META_KEYS, "method", "trainer", "params", "test_acc", "epochs", "extra"])
meta_edits = st.dictionaries(meta_keys, st.one_of(values, neuron_values, st.just("<drop>")), max_size=4)


def _weight_edit(state: dict, key: str, how: str) -> dict:
    state = dict(state)
    t = state[key]
    if how == "nan" and t.is_floating_point() and t.numel():
        t = t.clone()
        t.view(-1)[0] = float("nan")
    elif how == "int":
        t = t.to(torch.int64)
    elif how == "complex" and t.is_floating_point():
        t = torch.complex(t, t)
    elif how == "half" and t.is_floating_point():
        t = t.half()
    elif how == "shape":
        t = torch.zeros(t.numel() + 1)
    elif how == "list":
        t = t.tolist()
    elif how == "drop":
        state.pop(key)
        return state
    elif how == "int-key":
        state[len(key)] = state.pop(key)
        return state
    state[key] = t
    return state


weight_edits = st.lists(st.tuples(st.sampled_from(sorted(STATE)), st.sampled_from(
    ["nan", "int", "complex", "half", "shape", "list", "drop", "int-key", "none"])), max_size=2)


@SETTINGS
@given(edits=meta_edits, wedits=weight_edits)
def test_load_model_returns_a_valid_model_or_one_error(edits, wedits):
    meta = dict(SNN_META)
    for k, v in edits.items():
        if v == "<drop>":
            meta.pop(k, None)
        else:
            meta[k] = v
    state = STATE
    for key, how in wedits:
        if isinstance(state.get(key), torch.Tensor):  # an earlier edit may have dropped or replaced it
            state = _weight_edit(state, key, how)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.pt"
        io.save_checkpoint(path, state, meta)
        try:
            model, back = load_model(path)
        except SnnkdError as e:
            assert "\n" not in str(e)
            return
    from snnkd.validate import check_meta, nonfinite_count

    assert isinstance(model, StagedNet) and check_meta(back, "m") is back
    assert nonfinite_count(model.state_dict()) == 0
    assert all(isinstance(k, str) for k in state)


# --- NIR ----------------------------------------------------------------------------------------------------

def _small_graph() -> nir.NIRGraph:
    n_in, n = 16, 10
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([n_in])),
        "fc": nir.Affine(weight=np.ones((n, n_in), np.float32), bias=np.zeros(n, np.float32)),
        "lif": nir.LIF(tau=np.full(n, 2.0, np.float32), r=np.ones(n, np.float32), v_leak=np.zeros(n, np.float32),
                       v_threshold=np.ones(n, np.float32), v_reset=np.zeros(n, np.float32)),
        "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], metadata={"dt": 1e-4})


GOOD_NIR = Path(tempfile.mkdtemp(prefix="fuzz-nir-")) / "good.nir"
nir.write(GOOD_NIR, _small_graph())
DATASETS: list[str] = []  # every dataset under /node: node attributes, types, edges, metadata
with h5py.File(GOOD_NIR, "r") as _f:
    _f["node"].visititems(lambda name, obj: DATASETS.append(name) if isinstance(obj, h5py.Dataset) else None)

def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or 2**31 cast to int8 is part of the fuzz
        return a.astype(dtype)


arrays = st.one_of(
    st.builds(lambda shape, dt, fill: _cast(np.full(shape, fill), dt),
              st.lists(st.integers(0, 17), max_size=3).map(tuple),
              st.sampled_from(["float32", "float64", "int64", "int8", "uint8", "bool", "complex64"]),
              st.sampled_from([0, 1, -1, 0.5, 2**31, float("nan"), float("inf"), -float("inf")])),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=10)
    .map(lambda s: s.encode()),  # no lone surrogates: they have no UTF-8 encoding
    st.sampled_from([b"Affine", b"LIF", b"IF", b"Conv2d", b"Input", b"nope", b""]))


@SETTINGS
@given(name=st.sampled_from(DATASETS), value=st.one_of(arrays, st.just(None)))
def test_read_nir_returns_a_runnable_graph_or_one_error(name, value):
    from snnkd.export.nir_check import nirtorch_module, read_nir

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "g.nir"
        path.write_bytes(GOOD_NIR.read_bytes())
        with h5py.File(path, "a") as f:
            del f["node"][name]
            if value is not None:
                f["node"].create_dataset(name, data=value)
        try:
            graph = read_nir(path)
        except SnnkdError as e:
            assert "\n" not in str(e)
            return
    shape = tuple(int(s) for s in graph.nodes["input"].input_type["input"])
    try:
        gm = nirtorch_module(graph)
        state = None
        for _ in range(2):
            _, state = gm(torch.zeros(1, *shape), state)
    except SnnkdError:
        return
