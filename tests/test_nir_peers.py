"""Peer readers of our NIR: norse and sinabs read the exported graphs of real trained students.

Our conventions (export/nir_export.py): one graph step is ``v = beta v + I``, spike if
``v > v_threshold``, hard reset to ``v_reset = 0``; IF has ``r = 1/dt``, LIF has
``tau = dt/(1 - beta)``, ``r = tau/dt``, ``v_leak = 0``; NIR shapes carry no batch axis.
Each peer's module is run on the same encoded test digits as the trained model
(:func:`snnkd.export.nir_check.run_reference`) and compared spike for spike.

What the peers read differently, measured here (the figures are in the test bodies):

* **norse 1.1** (``norse.torch.from_nir``): IF exact.  It reads ``Flatten`` dims literally
  (no batch-axis shift), so the module is run one unbatched sample at a time, which is NIR's
  own no-batch convention.  It has no ``AvgPool2d`` mapping (only ``SumPool2d``): resnet_tiny's
  global pool is rewritten as a ``SumPool2d`` with ``1/k^2`` folded into the next ``Affine``.
  It ignores ``r`` (IF: ``v += I``, right since ``r dt = 1``; LIF: ``v += dt/tau (v_leak - v + I)``
  without ``r``, so the input is scaled by ``1 - beta``): LIF agrees once ``r`` is folded into
  the weights feeding each LIF node.
* **sinabs 3.1** (``sinabs.from_nir``, SynSense's toolchain for Speck): see
  :func:`test_sinabs_reads_vtiny`.
"""

from __future__ import annotations

import copy
import functools
import logging
from importlib import metadata

import nir
import numpy as np
import pytest
import torch
from export_models import scratch, trained
from torch import nn

from snnkd.cli.inputs import model_inputs
from snnkd.cli.main import main
from snnkd.export import nir_check as nc
from snnkd.export.nir_export import to_nir, write_nir
from snnkd.runtime import load_model

pytestmark = pytest.mark.timeout(300)
SAMPLES = 32  # real test digits per comparison (norse runs them one by one)


def _version(pkg: str) -> tuple[int, ...]:
    return tuple(int(p) for p in metadata.version(pkg).split(".")[:3] if p.isdigit())


def test_peer_installs_keep_the_nir_pins() -> None:
    """sinabs declares nir<=1.0.4; a normal install downgrades nirtorch to 2.0.2, which breaks
    norse's and sinabs' import of our graphs.  setup.sh installs it with --no-deps: the pins hold."""
    assert _version("nirtorch") >= (2, 6), metadata.version("nirtorch")
    assert _version("nir") >= (1, 0, 8), metadata.version("nir")
    for peer in ("norse", "sinabs"):
        try:
            metadata.version(peer)
        except metadata.PackageNotFoundError:
            continue
        assert __import__(peer)  # imports beside these pins


@functools.cache
def _lif_student() -> str:
    """A LIF vgg_tiny (decay 0.75) trained for real on digits (seconds)."""
    out = scratch() / "lif"
    rc = main(["distill", "--student", "vgg_tiny", "--method", "none", "--dataset", "digits", "--out", str(out),
               "--no-progress", "--seed", "0", "--T", "4", "--epochs", "2", "--lr", "0.05", "--neuron", "lif",
               "--decay", "0.75", "--limit-train", "600"])
    assert rc == 0
    return str(out / "model.pt")


def _exported(path) -> tuple[nir.NIRGraph, torch.Tensor, torch.Tensor, tuple]:
    """Our graph written and read back, encoded test inputs, labels and the model's own run."""
    model, meta = load_model(path)
    out = scratch() / "m.nir"
    write_nir(to_nir(model, meta), out)
    x, y = model_inputs(meta, "data", "test", SAMPLES)
    torch.manual_seed(0)
    x_seq = model.encoder(x, model.T)
    return nc.read_nir(out), x_seq, y, nc.run_reference(model, x_seq)


def _successors(graph: nir.NIRGraph, name: str) -> list[str]:
    return [b for a, b in graph.edges if a == name]


def _avgpool_as_sumpool(graph: nir.NIRGraph) -> nir.NIRGraph:
    """Each ``AvgPool2d`` as NIR's ``SumPool2d``, its ``1/k^2`` folded into the linear layer
    it feeds (through ``Flatten``): an exact rewrite for readers that map only ``SumPool2d``."""
    g = copy.deepcopy(graph)
    for name, node in list(g.nodes.items()):
        if not isinstance(node, nir.AvgPool2d):
            continue
        assert not np.any(node.padding), "a padded average is not a scaled sum at the border"
        g.nodes[name] = nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)
        nxt = _successors(g, name)
        while len(nxt) == 1 and isinstance(g.nodes[nxt[0]], nir.Flatten):
            nxt = _successors(g, nxt[0])
        assert nxt and all(isinstance(g.nodes[n], (nir.Affine, nir.Conv2d)) for n in nxt), nxt
        for n in nxt:
            g.nodes[n].weight = g.nodes[n].weight / float(np.prod(node.kernel_size))
    return g


def _fold_r(graph: nir.NIRGraph) -> nir.NIRGraph:
    """Each LIF node's (uniform) ``r`` moved into the weights and bias of the layers feeding it."""
    g = copy.deepcopy(graph)
    for name, node in g.nodes.items():
        if not isinstance(node, nir.LIF):
            continue
        r = float(np.unique(node.r).item())
        for src, dst in g.edges:
            if dst == name:
                pre = g.nodes[src]
                assert isinstance(pre, (nir.Affine, nir.Conv2d)), f"{src} feeds {name} without weights"
                pre.weight, pre.bias = pre.weight * r, pre.bias * r
        node.r = np.ones_like(node.r)
    return g


def _norse_module(graph: nir.NIRGraph, topological: bool = False) -> nn.Module:
    """``norse.torch.from_nir(graph)``; ``topological``: norse's own node mapper, wired by
    ``nirtorch.nir_to_torch`` instead (see :func:`test_norse_reads_if_students`)."""
    norse = pytest.importorskip("norse.torch", reason="norse is not installed (pip install '.[nirtest]')")
    logging.getLogger().setLevel(logging.ERROR)  # norse logs its r != 1 warning per node
    dt = float(graph.metadata["dt"])
    if not topological:
        return norse.from_nir(graph, dt=dt, ignore_warnings=True)
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module  # what norse.torch.from_nir maps nodes with

    mapper = functools.partial(_import_norse_module, dt=dt, ignore_warnings=True)
    kinds = (nir.IF, nir.LIF, nir.Conv2d, nir.Affine, nir.Flatten, nir.SumPool2d)
    return nirtorch.nir_to_torch(graph, dict.fromkeys(kinds, mapper))


def _norse_run(mod: nn.Module, x_seq: torch.Tensor) -> tuple:
    """A norse module over ``x_seq``, one unbatched sample at a time (norse reads Flatten dims literally)."""
    from norse.torch.module.iaf import IAFCell
    from norse.torch.module.lif_box import LIFBoxCell

    outs, spikes = [], {}
    for i in range(x_seq.shape[1]):
        y, s = nc.run_graph_module(mod, x_seq[:, i], (IAFCell, LIFBoxCell))
        outs.append(y)
        for k, v in s.items():
            spikes.setdefault(k, []).append(v)
    return torch.stack(outs, 1), {k: torch.stack(v, 1) for k, v in spikes.items()}


@pytest.mark.parametrize("arch", ["vgg_tiny", "resnet_tiny"])
def test_norse_reads_if_students(arch: str) -> None:
    """IF students: norse's spikes equal ours and the logits agree to float rounding
    (measured on 32 test digits: 1.0 spike agreement, predictions all equal, on vgg_tiny and
    resnet_tiny).  resnet_tiny needs two workarounds: the AvgPool2d rewrite, and norse's
    node modules wired by ``nirtorch.nir_to_torch``: ``norse.torch.from_nir`` goes through the
    deprecated ``nirtorch.load``, whose executor runs nodes in depth-first order, not a
    topological one, so a residual join (two edges into one node) runs before both of its
    inputs are ready and the output comes from the wrong node."""
    pytest.importorskip("norse", reason="norse is not installed (pip install '.[nirtest]')")
    graph, x_seq, y, ref = _exported(trained(arch))
    residual = any(isinstance(n, nir.AvgPool2d) for n in graph.nodes.values())
    if residual:
        # norse 1.1 maps AvgPool2d to nothing: the pool node is dropped from its module
        assert not any(isinstance(m, (nn.AvgPool2d, nn.LPPool2d)) for m in _norse_module(graph).modules())
        graph = _avgpool_as_sumpool(graph)
    mod = _norse_module(graph, topological=residual)
    a = nc.agreement(ref, _norse_run(mod, x_seq), y)
    assert a["spike_agreement"] > 0.9999, a
    assert a["prediction_agreement"] == 1.0, a
    assert a["logits_max_abs_error"] < 1e-4, a


def test_norse_reads_lif_student_once_r_is_in_the_weights() -> None:
    """LIF: norse drops ``r`` (its LIF is ``v += dt/tau (v_leak - v + I)``), so as written its
    input gain is ``1 - beta`` = 0.25 instead of 1 and its neurons fire far less; with ``r``
    folded into the weights feeding each LIF node (an exact NIR rewrite) it equals ours."""
    pytest.importorskip("norse", reason="norse is not installed (pip install '.[nirtest]')")
    graph, x_seq, y, ref = _exported(_lif_student())
    assert any(isinstance(n, nir.LIF) for n in graph.nodes.values())
    as_written = nc.agreement(ref, _norse_run(_norse_module(graph), x_seq), y)
    fired = {k: float(v.mean()) for k, v in ref[1].items()}
    assert as_written["spike_agreement"] < 0.99 or not any(fired.values()), (as_written, fired)
    a = nc.agreement(ref, _norse_run(_norse_module(_fold_r(graph)), x_seq), y)
    assert a["spike_agreement"] > 0.9999, a
    assert a["prediction_agreement"] == 1.0, a


def _sinabs_run(mod: nn.Module, x_seq: torch.Tensor, neuron_types: tuple[type, ...]) -> tuple:
    """sinabs's squeezed layers take ``[B*T, ...]`` (sample-major); back to ``[T, B, ...]``."""
    T, B = x_seq.shape[:2]
    store: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: store.__setitem__(nc.spike_key(n), o.detach().clone()))
             for n, m in mod.named_modules() if isinstance(m, neuron_types)]
    try:
        with torch.no_grad():
            y, _ = mod(x_seq.transpose(0, 1).reshape(B * T, *x_seq.shape[2:]))
    finally:
        for h in hooks:
            h.remove()
    unfold = lambda a: a.reshape(B, T, *a.shape[1:]).transpose(0, 1)  # noqa: E731
    return unfold(y), {k: unfold(v) for k, v in store.items()}


def _sinabs():
    return pytest.importorskip("sinabs", reason="sinabs is not installed (bash scripts/setup.sh installs it "
                                                "with --no-deps: SNNKD_EXTRAS must include sinabs)")


def _with_our_neurons(mod: nn.Module) -> nn.Module:
    """Our neuron on sinabs's layers: one spike per step, hard reset to 0, no floor on ``v``."""
    from sinabs.activation import MembraneReset, SingleSpike
    from sinabs.layers import IAFSqueeze, LIFSqueeze
    for m in mod.modules():
        if isinstance(m, (IAFSqueeze, LIFSqueeze)):
            m.spike_fn, m.reset_fn, m.min_v_mem = SingleSpike, MembraneReset(), None
    return mod


def test_sinabs_reads_vtiny() -> None:
    """sinabs reads our ``vtiny`` (vgg_tiny) graph, but its ``IAFSqueeze`` cannot express our IF:
    it ignores ``v_reset`` and the recorded hard reset (it subtracts the threshold), emits
    several spikes per step (``floor(v / v_threshold)``, not 0/1), clamps ``v`` below at
    ``-v_threshold`` and fires at ``v >= v_threshold`` (ours ``v > v_threshold``; equal only on
    exact ties).  Measured on 32 test digits: 0.87 of the spikes agree as imported (layer 1:
    0.92, layer 2: 0.77), predictions all agree, logits scaled by the extra spikes.  With our
    spike, reset and floor set on its layers, spikes and logits are identical."""
    sinabs = _sinabs()
    from sinabs.layers import IAFSqueeze
    graph, x_seq, y, ref = _exported(trained("vgg_tiny"))
    T = x_seq.shape[0]
    as_imported = nc.agreement(ref, _sinabs_run(sinabs.from_nir(graph, num_timesteps=T), x_seq, (IAFSqueeze,)), y)
    assert 0.5 < as_imported["spike_agreement"] < 0.99, as_imported  # the conventions above, not noise
    a = nc.agreement(ref, _sinabs_run(_with_our_neurons(sinabs.from_nir(graph, num_timesteps=T)), x_seq, (IAFSqueeze,)),
                     y)
    assert a["spike_agreement"] > 0.9999, a
    assert a["prediction_agreement"] == 1.0 and a["logits_max_abs_error"] < 1e-4, a


def test_sinabs_reads_lif_tau_in_steps() -> None:
    """sinabs cannot import our LIF nodes as written: its check ``any(node.v_leak) != 0``
    raises on per-neuron (C, H, W) parameters.  With ``v_leak`` given as one value it reads
    them, but its ``LIFSqueeze`` takes ``tau`` as a number of time steps (``dt`` is ignored)
    with an exact exponential decay ``alpha = exp(-1/tau)``: our ``tau = dt/(1 - beta)``
    seconds becomes ``alpha ~ 0`` (no memory).  Given ``tau = -1/ln(beta)`` steps and our
    neuron (:func:`_with_our_neurons`), its spikes equal ours: the leak is expressible, NIR's
    continuous ``tau`` (forward Euler in our export) is what it cannot read."""
    sinabs = _sinabs()
    from sinabs.layers import LIFSqueeze
    graph, x_seq, y, ref = _exported(_lif_student())
    T = x_seq.shape[0]
    with pytest.raises(ValueError, match="truth value of an array"):
        sinabs.from_nir(graph, num_timesteps=T)
    graph = copy.deepcopy(graph)
    for node in graph.nodes.values():
        if isinstance(node, nir.LIF):
            assert not np.any(node.v_leak)
            node.v_leak = np.zeros(1, np.float32)
    mod = _with_our_neurons(sinabs.from_nir(graph, num_timesteps=T))
    lifs = [m for m in mod.modules() if isinstance(m, LIFSqueeze)]
    assert lifs and all(float(m.alpha_mem_calculated.detach().max()) < 1e-6 for m in lifs)
    as_imported = nc.agreement(ref, _sinabs_run(mod, x_seq, (LIFSqueeze,)), y)
    assert as_imported["spike_agreement"] < 0.99, as_imported
    mod = _with_our_neurons(sinabs.from_nir(graph, num_timesteps=T))  # fresh: sinabs layers keep v across calls
    for m in mod.modules():
        if isinstance(m, LIFSqueeze):
            m.tau_mem.data.fill_(-1.0 / np.log(0.75))
    a = nc.agreement(ref, _sinabs_run(mod, x_seq, (LIFSqueeze,)), y)
    assert a["spike_agreement"] > 0.999, a
    assert a["prediction_agreement"] == 1.0, a
