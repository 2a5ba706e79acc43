"""Operation counts on the exported NIR graph, and energy per target (methods.md section 8).

The graph is run (re-imported with nirtorch) on test inputs; for every ``Conv2d`` or
``Affine`` node, per sample and summed over the ``T`` steps:

* its input is classified **on the graph**: ``spikes`` (a neuron node feeds it, possibly
  through ``Flatten``), ``pooled spikes`` (through an ``AvgPool2d``), or ``real`` (the input);
* ``SynOps`` (spike input) ``= sum over input spikes of their fan-out`` (exact at borders,
  :func:`snnkd.ops.conv_synops`); a pooled input is first turned back into spike counts
  (``sum pool = avg pool x area``, pooling folded into the next layer's weights), so it is
  accumulate-only too; ``MACs`` (real input) ``= FLOPs`` per step;
* ``events`` = synaptic events on an event-driven chip, ``sum over non-zero inputs of their
  fan-out``: spikes and pooled spikes as for SynOps; a real input is sent as graded spikes
  (non-zero values only).

Neuron updates = neurons x ``T`` for every IF/LIF node; on Loihi the output layer also
runs as ``K`` (non-spiking) neurons.  Energy per sample:

* digital baseline (``cmos45nm``): ``E = MACs mac_pj + SynOps ac_pj + updates neuron_update_pj``;
* event-driven target (``loihi``): ``E = events ac_pj + updates neuron_update_pj``;
* ANN (teacher, or the student's architecture with ReLU): ``E = FLOPs mac_pj``.
"""

from __future__ import annotations

import nir
import torch
from torch import nn

from snnkd.export import nir_check as nc
from snnkd.errors import SnnkdError
from snnkd.ops import conv_synops, count_ops

EVENT_DRIVEN = ("loihi",)


def energy_targets() -> dict:
    """The packaged per-target energies (``snnkd/resources/energy.yaml``)."""
    from snnkd.validate import load_energy_table

    return load_energy_table()


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


def _fanout_sum(x: torch.Tensor, layer: nn.Module) -> float:
    """``sum_i x_i * fanout(i)`` for non-negative ``x`` (spikes or spike counts)."""
    if isinstance(layer, nn.Conv2d):
        return conv_synops(x, layer)
    return float(x.sum()) * layer.out_features


def _flops(layer: nn.Module, out: torch.Tensor) -> float:
    if isinstance(layer, nn.Conv2d):
        k = layer.kernel_size[0] * layer.kernel_size[1] * (layer.in_channels // layer.groups)
        return float(out.numel() * k)
    return float(out.numel() * layer.in_features)


@torch.no_grad()
def graph_counts(graph: nir.NIRGraph, x_seq: torch.Tensor) -> dict:
    """Per-sample counts per layer of ``graph`` run on ``x_seq [T, B, ...]``."""
    gm = nc.nirtorch_module(graph)
    T, B = x_seq.shape[0], x_seq.shape[1]
    layers: dict[str, dict] = {}
    neurons: dict[str, float] = {}
    hooks = []
    for name, mod in gm.named_modules():
        node = graph.nodes.get(name)
        if isinstance(node, (nir.Conv2d, nir.Affine)):
            kind, area = input_kind(graph, name)
            layers[name] = {"name": name, "type": type(node).__name__, "input": kind,
                            "synops": 0.0, "macs": 0.0, "events": 0.0, "ann_macs": 0.0}

            def hook(m, inp, out, name=name, kind=kind, area=area):
                x, rec = inp[0], layers[name]
                flops = _flops(m, out)
                rec["ann_macs"] += flops / T
                if kind == "spikes":
                    rec["synops"] += _fanout_sum(x, m)
                    rec["events"] += _fanout_sum(x, m)
                elif kind == "pooled spikes":
                    counts = _fanout_sum(torch.round(x * area), m)
                    rec["synops"] += counts
                    rec["events"] += counts
                else:
                    rec["macs"] += flops
                    rec["events"] += _fanout_sum((x != 0).to(x.dtype), m)
            hooks.append(mod.register_forward_hook(hook))
        elif isinstance(node, (nir.IF, nir.LIF)):
            neurons[name] = 0.0
            hooks.append(mod.register_forward_hook(
                lambda m, inp, out, name=name: neurons.__setitem__(name, neurons[name] + float(out[0].numel()))))
    try:
        nc.run_graph_module(gm, x_seq, (nc.NirNeuron,))
    finally:
        for h in hooks:
            h.remove()
    for rec in layers.values():
        for k in ("synops", "macs", "events", "ann_macs"):
            rec[k] /= B
    outputs = [int(n.output_type["output"][0]) for n in graph.nodes.values() if isinstance(n, nir.Output)]
    return {"layers": list(layers.values()), "neuron_updates": sum(neurons.values()) / B,
            "output_neuron_updates": float(sum(outputs) * T), "T": T, "samples": B}


def energies(counts: dict, targets: dict, teacher_macs: float | None = None) -> dict:
    """Energy per sample (pJ) per target for the SNN, the ANN of the same graph, and the teacher."""
    syn = sum(r["synops"] for r in counts["layers"])
    mac = sum(r["macs"] for r in counts["layers"])
    ev = sum(r["events"] for r in counts["layers"])
    ann = sum(r["ann_macs"] for r in counts["layers"])
    nu = counts["neuron_updates"]
    out: dict[str, dict] = {}
    for name, t in targets.items():
        mac_pj, ac_pj, nu_pj = float(t["mac_pj"]), float(t["ac_pj"]), float(t.get("neuron_update_pj", 0.0))
        if name in EVENT_DRIVEN:
            nu_t = nu + counts["output_neuron_updates"]
            e = {"snn_pj": ev * ac_pj + nu_t * nu_pj, "synaptic_pj": ev * ac_pj, "neuron_pj": nu_t * nu_pj,
                 "ann_same_arch_pj": None, "teacher_pj": None,
                 "note": "event-driven: synaptic events x ac_pj + neuron updates (incl. output neurons) "
                         "x neuron_update_pj; an ANN does not run on this target"}
        else:
            e = {"snn_pj": mac * mac_pj + syn * ac_pj + nu * nu_pj, "mac_pj_total": mac * mac_pj,
                 "synaptic_pj": syn * ac_pj, "neuron_pj": nu * nu_pj, "ann_same_arch_pj": ann * mac_pj,
                 "teacher_pj": teacher_macs * mac_pj if teacher_macs is not None else None}
        e["source"] = t.get("source", "")
        e["per_layer_pj"] = {
            r["name"]: (r["events"] * ac_pj if name in EVENT_DRIVEN else r["macs"] * mac_pj + r["synops"] * ac_pj)
            for r in counts["layers"]}
        out[name] = e
    return out


@torch.no_grad()
def compare_with_torch(model, x: torch.Tensor, counts: dict, seed: int = 0) -> dict:
    """PyTorch-side counts of :func:`snnkd.ops.count_ops` on the same inputs, and the
    largest relative difference per layer against the graph's counts."""
    torch.manual_seed(seed)
    rep = count_ops(model, [(x, None)])
    diffs = {}
    for name, rec in rep.layers.items():
        key = nc._key(name)
        g = next((r for r in counts["layers"] if r["name"] == key), None)
        if g is None:
            raise SnnkdError(f"layer {name} of the model is missing from the exported graph")
        d = max(abs(g[k] - getattr(rec, k)) / max(abs(getattr(rec, k)), 1.0) for k in ("synops", "macs"))
        diffs[key] = {"synops_torch": rec.synops, "macs_torch": rec.macs, "rel_diff": d}
    return {"layers": diffs, "max_rel_diff": max((v["rel_diff"] for v in diffs.values()), default=0.0),
            "neuron_updates_torch": rep.neuron_updates,
            "neuron_updates_rel_diff": abs(rep.neuron_updates - counts["neuron_updates"]) / max(rep.neuron_updates, 1.0)}


def markdown_table(result: dict) -> str:
    """The energy table: per-layer counts and energies, then totals per target."""
    c, e = result["counts"], result["energy_pj"]
    tnames = list(e)
    head = "| layer | input | SynOps | MACs | events | " + " | ".join(f"E {t} (nJ)" for t in tnames) + " |"
    lines = [f"# Energy per sample: {result['arch']} ({result['dataset']}, T={c['T']}, {c['samples']} test samples)", "",
             head, "|" + "---|" * (5 + len(tnames))]
    for r in c["layers"]:
        lines.append(f"| {r['name']} | {r['input']} | {r['synops']:.4g} | {r['macs']:.4g} | {r['events']:.4g} | "
                     + " | ".join(f"{e[t]['per_layer_pj'][r['name']] / 1e3:.4g}" for t in tnames) + " |")
    lines += ["", f"Neuron updates per sample: {c['neuron_updates']:.4g} "
              f"(+ {c['output_neuron_updates']:.4g} output neurons on event-driven targets).", "",
              "| target | SNN (nJ) | ANN, same architecture (nJ) | ANN teacher (nJ) | source |", "|---|---|---|---|---|"]
    fmt = lambda v: "n/a" if v is None else f"{v / 1e3:.4g}"  # noqa: E731
    for t in tnames:
        lines.append(f"| {t} | {fmt(e[t]['snn_pj'])} | {fmt(e[t]['ann_same_arch_pj'])} | {fmt(e[t]['teacher_pj'])} | "
                     f"{e[t]['source']} |")
    return "\n".join(lines) + "\n"
