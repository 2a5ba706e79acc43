"""The one energy model of snnkd: per-layer operation counts and their price per target.

Counts (:class:`Counts`) are per test sample, summed over the ``T`` time steps.  Two
producers fill the same type: the PyTorch forward hooks of :func:`snnkd.ops.count_ops`
(``eval.json``, the workflow summary, the plots) and the exported NIR graph of
:func:`snnkd.export.energy.graph_counts` (``energy.json`` / ``energy.md``, which also
checks the two against each other).  For a weight layer ``l`` (``Conv2d``, ``Linear``):

* ``SynOps_l``: accumulates triggered by input spikes, ``sum_i s_i * fanout_l(i)``; a
  spike tensor that passed an average pool of area ``a`` is turned back into spike counts
  ``c = a * p`` first (the ``1/a`` folds into the weights), so it is accumulate-only too;
* ``MACs_l``: multiply-accumulates on a real-valued input, the layer's FLOPs per step, times ``T``;
* ``Events_l``: synaptic events on an event-driven chip, ``sum_i [x_i != 0] * fanout_l(i)``
  (``= SynOps_l`` for spikes; a real input is sent as graded spikes, one event per non-zero
  value and target);
* ``Dense_l``: FLOPs of one step, what the same layer costs in an ANN.

Neuron updates ``N_n = neurons_n * T`` per spiking layer ``n``; ``N_out = K * T`` output
neurons (the ``K`` logits) run as non-spiking neurons on an event-driven chip.

Pricing (:func:`price`), energy per sample with the figures of one target of
``energy.yaml`` (``E_mac``, ``E_ac``, ``E_nu``):

* ``model: digital`` (clocked hardware, e.g. 45 nm CMOS):
  ``E = sum_l (SynOps_l * E_ac + MACs_l * E_mac) + sum_n N_n * E_nu``;
* ``model: event_driven`` (Loihi): ``E = sum_l Events_l * E_ac + (sum_n N_n + N_out) * E_nu``;
  an ANN does not run there (``None``);
* an ANN is priced by the same formula (its counts hold MACs only);
  :func:`dense_pj` prices the SNN's architecture as an ANN: ``E = sum_l Dense_l * E_mac``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from snnkd.errors import SnnkdError

MODELS = ("digital", "event_driven")
INPUT_KINDS = ("spikes", "pooled spikes", "real")


@dataclass
class LayerCounts:
    """Per-sample counts of one weight layer (see the module docstring)."""

    name: str
    kind: str
    input: str = "real"
    synops: float = 0.0
    macs: float = 0.0
    events: float = 0.0
    dense_macs: float = 0.0
    input_rate: float = 0.0

    @property
    def spiking_input(self) -> bool:
        return self.input != "real"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spiking_input": self.spiking_input}


@dataclass
class Counts:
    """Per-sample operation counts of a model over some test inputs."""

    layers: OrderedDict[str, LayerCounts] = field(default_factory=OrderedDict)
    neurons: OrderedDict[str, float] = field(default_factory=OrderedDict)  # updates per spiking layer
    firing_rates: OrderedDict[str, float] = field(default_factory=OrderedDict)
    output_neurons: float = 0.0  # K * T: the output layer's neuron updates on an event-driven chip
    spiking: bool = True
    T: int = 1
    samples: int = 0

    @property
    def synops(self) -> float:
        return sum(r.synops for r in self.layers.values())

    @property
    def macs(self) -> float:
        return sum(r.macs for r in self.layers.values())

    @property
    def events(self) -> float:
        return sum(r.events for r in self.layers.values())

    @property
    def dense_macs(self) -> float:
        return sum(r.dense_macs for r in self.layers.values())

    @property
    def neuron_updates(self) -> float:
        return sum(self.neurons.values())

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "T": self.T, "spiking": self.spiking, "synops": self.synops,
                "macs": self.macs, "events": self.events, "dense_macs": self.dense_macs,
                "neuron_updates": self.neuron_updates, "output_neurons": self.output_neurons,
                "layers": [r.as_dict() for r in self.layers.values()], "neurons": dict(self.neurons),
                "firing_rates": dict(self.firing_rates)}


def check_table(table: dict, where: object) -> dict:
    """A checked energy table: the figures (``snnkd.validate.check_energy_table``), then
    ``model`` (``digital`` when absent) and the optional per-figure ``figures:`` sources."""
    from snnkd.validate import check_energy_table

    check_energy_table(table, where)
    for name, t in table.items():
        model = t.get("model", "digital")
        if model not in MODELS:
            raise SnnkdError(f"{where}: {name}.model must be one of {', '.join(MODELS)}, not {model!r:.60}")
        figures = t.get("figures", {})
        if not isinstance(figures, dict):
            raise SnnkdError(f"{where}: {name}.figures maps each *_pj figure to {{source, checked}}")
        for key, f in figures.items():
            if key not in t or not str(key).endswith("_pj"):
                raise SnnkdError(f"{where}: {name}.figures.{key} names no *_pj figure of {name}")
            if not (isinstance(f, dict) and isinstance(f.get("source"), str) and isinstance(f.get("checked"), bool)):
                raise SnnkdError(f"{where}: {name}.figures.{key} needs a text 'source' and a true/false 'checked'")
    return table


def load_table(path: Any = None) -> dict:
    """The energy table at ``path`` (default: the packaged ``snnkd/resources/energy.yaml``), checked."""
    from snnkd.validate import load_energy_table

    return check_table(load_energy_table(path), path or "snnkd/resources/energy.yaml")


def _figures(target: dict) -> tuple[float, float, float]:
    return float(target["mac_pj"]), float(target["ac_pj"]), float(target.get("neuron_update_pj", 0.0))


def price(counts: Counts, target: dict) -> dict[str, Any]:
    """Energy per sample in pJ of ``counts`` on one ``target`` (module docstring):
    ``total_pj`` (``None`` where the model does not run on the target), its parts, and
    the energy per weight layer."""
    mac_pj, ac_pj, nu_pj = _figures(target)
    model = target.get("model", "digital")
    event = model == "event_driven"
    if event and not counts.spiking:
        return {"model": model, "total_pj": None, "synaptic_pj": None, "mac_pj": None, "neuron_pj": None,
                "per_layer_pj": {n: None for n in counts.layers},
                "note": "an ANN does not run on an event-driven target"}

    def cost(c: Counts | LayerCounts) -> tuple[float, float]:
        """(synaptic, MAC) pJ of a layer's or the whole model's counts: an event-driven chip
        accumulates once per synaptic event and multiplies nothing."""
        return (c.events * ac_pj, 0.0) if event else (c.synops * ac_pj, c.macs * mac_pj)

    per_layer = {n: sum(cost(r)) for n, r in counts.layers.items()}
    syn, mac = cost(counts)
    nu = counts.neuron_updates + (counts.output_neurons if event else 0)
    return {"model": model, "total_pj": syn + mac + nu * nu_pj, "synaptic_pj": syn, "mac_pj": mac,
            "neuron_pj": nu * nu_pj, "per_layer_pj": per_layer}


def dense_pj(counts: Counts, target: dict) -> float | None:
    """The same architecture as an ANN: ``sum_l Dense_l * E_mac`` (``None`` on an event-driven target)."""
    if target.get("model", "digital") == "event_driven":
        return None
    return counts.dense_macs * _figures(target)[0]


def price_table(counts: Counts, table: dict) -> dict[str, dict[str, Any]]:
    """:func:`price` on every target of ``table``."""
    return {name: price(counts, t) for name, t in table.items()}


def energy_uj(counts: Counts, table: dict) -> dict[str, float | None]:
    """Total energy per sample in µJ per target: the figure of ``eval.json`` and ``energy.md``."""
    return {name: (None if e["total_pj"] is None else e["total_pj"] / 1e6)
            for name, e in price_table(counts, table).items()}
