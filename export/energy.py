"""Operation counts on the exported NIR graph: the export-side producer of
:class:`snnkd.energy.Counts` (methods.md section 8), priced by :func:`snnkd.energy.price`.

The graph is run (re-imported with nirtorch) on test inputs.  For every ``Conv2d`` or
``Affine`` node the input is classified **on the graph**: ``spikes`` (a neuron node feeds
it, possibly through ``Flatten``), ``pooled spikes`` (through an ``AvgPool2d`` of area
``a``) or ``real`` (the input); the counts then follow the same rules as the PyTorch hooks
(:func:`snnkd.ops.add_layer_counts`): ``SynOps = Events = sum_i c_i fanout(i)`` for spikes
or spike counts ``c = round(a * p)``, ``MACs = FLOPs`` per step and
``Events = sum_i [x_i != 0] fanout(i)`` for a real input.  Every IF/LIF node adds
``neurons x T`` updates; the ``K`` outputs add ``K x T`` (event-driven targets only).
:func:`compare_with_torch` checks these counts against :func:`snnkd.ops.count_ops`.
"""

from __future__ import annotations

import nir
import torch

from snnkd.energy import Counts, LayerCounts, dense_pj, load_table
from snnkd.errors import SnnkdError
from snnkd.export import nir_check as nc
from snnkd.ops import add_layer_counts, count_ops


def energy_targets(path=None) -> dict:
    """The checked per-target energies (default: ``snnkd/resources/energy.yaml``)."""
    return load_table(path)


def input_kind(graph: nir.NIRGraph, name: str) -> tuple[str, float]:
    """``("spikes" | "pooled spikes" | "real", pooling area)`` of the node ``name``'s input."""
    preds = {dst: [] for dst in graph.nodes}
    for src, dst in graph.edges:
        preds[dst].append(src)
    area, node = 1.0, name
    while True:
        srcs = preds[node]
        if len(srcs) != 1:
            raise SnnkdError(f"layer {node} has {len(srcs)} inputs; expected one")
        src = graph.nodes[srcs[0]]
        if isinstance(src, (nir.IF, nir.LIF, nir.CubaLIF)):
            return ("spikes" if area == 1.0 else "pooled spikes"), area
        if isinstance(src, nir.AvgPool2d):
            area *= float(src.kernel_size[0] * src.kernel_size[1])
        elif not isinstance(src, nir.Flatten):
            return "real", 1.0
        node = srcs[0]


@torch.no_grad()
def graph_counts(graph: nir.NIRGraph, x_seq: torch.Tensor) -> Counts:
    """Per-sample counts per layer of ``graph`` run on ``x_seq [T, B, ...]``."""
    gm = nc.nirtorch_module(graph)
    T, B = x_seq.shape[0], x_seq.shape[1]
    outputs = [int(n.output_type["output"][0]) for n in graph.nodes.values() if isinstance(n, nir.Output)]
    counts = Counts(spiking=True, T=T, samples=B, output_neurons=float(sum(outputs) * T))
    hooks = []
    for name, mod in gm.named_modules():
        node = graph.nodes.get(name)
        if isinstance(node, (nir.Conv2d, nir.Affine)):
            kind, area = input_kind(graph, name)
            counts.layers[name] = LayerCounts(name, type(node).__name__, kind)

            def hook(m, inp, out, name=name, kind=kind, area=area):
                add_layer_counts(counts.layers[name], m, inp[0], out, kind, area, T)
            hooks.append(mod.register_forward_hook(hook))
        elif isinstance(node, (nir.IF, nir.LIF)):
            counts.neurons[name] = counts.firing_rates[name] = 0.0

            def nhook(m, inp, out, name=name):
                s = out[0] if isinstance(out, tuple) else out
                counts.neurons[name] += float(s.numel())
                counts.firing_rates[name] += float(s.sum())
            hooks.append(mod.register_forward_hook(nhook))
    try:
        nc.run_graph_module(gm, x_seq, (nc.NirNeuron,))
    finally:
        for h in hooks:
            h.remove()
    for rec in counts.layers.values():
        rec.synops, rec.macs, rec.events, rec.dense_macs = (v / B for v in (rec.synops, rec.macs, rec.events,
                                                                           rec.dense_macs))
    for k, updates in counts.neurons.items():
        counts.firing_rates[k] /= max(updates, 1.0)
        counts.neurons[k] = updates / B
    return counts


@torch.no_grad()
def compare_with_torch(model, x: torch.Tensor, counts: Counts, seed: int = 0) -> dict:
    """PyTorch-side counts of :func:`snnkd.ops.count_ops` on the same inputs, and the
    largest relative difference per layer against the graph's counts."""
    torch.manual_seed(seed)
    rep = count_ops(model, [(x, None)])
    by_key = {nc.spike_key(n): r for n, r in counts.layers.items()}
    diffs = {}
    for name, rec in rep.layers.items():
        key = nc.spike_key(name)
        g = by_key.get(key)
        if g is None:
            raise SnnkdError(f"layer {name} of the model is missing from the exported graph")
        d = max(abs(getattr(g, k) - getattr(rec, k)) / max(abs(getattr(rec, k)), 1.0)
                for k in ("synops", "macs", "events"))
        diffs[key] = {"synops_torch": rec.synops, "macs_torch": rec.macs, "events_torch": rec.events, "rel_diff": d}
    return {"layers": diffs, "max_rel_diff": max((v["rel_diff"] for v in diffs.values()), default=0.0),
            "neuron_updates_torch": rep.neuron_updates,
            "neuron_updates_rel_diff": abs(rep.neuron_updates - counts.neuron_updates) / max(rep.neuron_updates, 1.0)}


def price_targets(counts: Counts, targets: dict, teacher: Counts | None = None) -> dict:
    """:func:`snnkd.energy.price` of the SNN per target, beside the ANN of the same
    architecture and the teacher (same formula on the teacher's counts)."""
    from snnkd.energy import price

    out = {}
    for name, t in targets.items():
        e = price(counts, t)
        e["snn_pj"] = e["total_pj"]
        e["ann_same_arch_pj"] = dense_pj(counts, t)
        e["teacher_pj"] = price(teacher, t)["total_pj"] if teacher is not None else None
        e["source"] = t.get("source", "")
        out[name] = e
    return out


def markdown_table(result: dict) -> str:
    """The energy table: per-layer counts and energies, then totals per target."""
    c, e = result["counts"], result["energy_pj"]
    tnames = list(e)

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v / 1e3:.4g}"

    head = "| layer | input | SynOps | MACs | events | " + " | ".join(f"E {t} (nJ)" for t in tnames) + " |"
    lines = [f"# Energy per sample: {result['arch']} ({result['dataset']}, T={c['T']}, {c['samples']} test samples)", "",
             head, "|" + "---|" * (5 + len(tnames))]
    for r in c["layers"]:
        lines.append(f"| {r['name']} | {r['input']} | {r['synops']:.4g} | {r['macs']:.4g} | {r['events']:.4g} | "
                     + " | ".join(fmt(e[t]['per_layer_pj'][r['name']]) for t in tnames) + " |")
    lines += ["", (f"Neuron updates per sample: {c['neuron_updates']:.4g} "
                   f"(+ {c['output_neurons']:.4g} output neurons on event-driven targets)."), "",
              "| target | model | SNN (nJ) | SNN (µJ) | ANN, same architecture (nJ) | ANN teacher (nJ) | source |",
              "|---|---|---|---|---|---|---|"]
    for t in tnames:
        uj = "n/a" if e[t]["snn_pj"] is None else f"{e[t]['snn_pj'] / 1e6:.4g}"
        lines.append(f"| {t} | {e[t]['model']} | {fmt(e[t]['snn_pj'])} | {uj} | {fmt(e[t]['ann_same_arch_pj'])} | "
                     f"{fmt(e[t]['teacher_pj'])} | {e[t]['source']} |")
    return "\n".join(lines) + "\n"
