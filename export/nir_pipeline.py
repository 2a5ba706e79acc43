"""``snnkd export --to nir``: write the graph, read it back, re-import it twice and compare.

The report holds, for the test inputs: the round trip of nodes and edges through the
file, the agreement of the ``nirtorch.nir_to_torch`` re-import with the PyTorch SNN, and
the agreement of a third-party reader (spikingjelly), when installed.  The caller gives
the test inputs as tensors (``snnkd.cli.inputs.model_inputs``); no data root reaches here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from snnkd.export import nir_check as nc
from snnkd.export.loihi.run import signals_raise
from snnkd.export.nir_export import DEFAULT_DT, to_nir, write_nir
from snnkd.models.base import StagedNet


def export_nir(model: StagedNet, meta: dict, out: str | Path, x: torch.Tensor, y: torch.Tensor,
               dt: float = DEFAULT_DT, third_party: bool = True, seed: int = 0, batch: int = 200,
               batches: Callable[[range], Iterable[int]] = iter) -> dict:
    """Export ``model`` to ``out`` and return the verification report on the test inputs
    ``x`` (un-encoded) and labels ``y``, checked ``batch`` samples at a time (a ``SIGTERM`` while writing leaves no temporary
    file: see :func:`snnkd.export.loihi.run.signals_raise`)."""
    graph = to_nir(model, meta, dt)
    with signals_raise():
        write_nir(graph, out)
    back = nc.read_nir(out)
    readers: dict[str, tuple[torch.nn.Module, tuple[type, ...]]] = {"nirtorch": (nc.nirtorch_module(back), (nc.NirNeuron,))}
    report: dict = {
        "format": "nir", "out": str(out), "dt": dt, "T": model.T, "test_samples": int(len(x)),
        "reset": graph.metadata["reset"],
        "nodes": sorted(back.nodes), "edges": sorted(map(list, back.edges)),
        "round_trip_equal": sorted(back.nodes) == sorted(graph.nodes) and sorted(back.edges) == sorted(graph.edges),
    }
    if graph.metadata["reset"] != "hard":
        report["note"] = "NIR has no soft reset: readers reset to v_reset, so spikes may differ from this model"
    if third_party:
        try:
            readers["spikingjelly"] = (nc.spikingjelly_module(back), nc.spikingjelly_neuron_types())
        except nc.SnnkdError as e:  # not installed: the product does not depend on it
            report["spikingjelly"] = {"skipped": str(e)}
        except (ValueError, NotImplementedError) as e:  # installed, but refuses this graph
            report["spikingjelly"] = {"error": f"{type(e).__name__}: {e}"}
    # Batch by batch, so that the spikes of every layer for every step are held for one batch
    # only (the whole 10,000-image MNIST test set at once took 19.6 GB); the encoder is seeded
    # once and draws batch after batch.
    counters = {name: nc.Agreement() for name in readers}
    torch.manual_seed(seed)
    for i in batches(range(0, len(x), batch)):
        x_seq = model.encoder(x[i:i + batch], model.T)
        ref = nc.run_reference(model, x_seq)
        for name, (module, neuron_types) in readers.items():
            counters[name].add(ref, nc.run_graph_module(module, x_seq, neuron_types), y[i:i + batch])
    for name, counter in counters.items():
        report[name] = counter.result()
    return report
