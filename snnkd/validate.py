"""Schemas for what snnkd reads back: checkpoint metadata and weights, energy tables.

Everything is checked before a model is built from it, so a file that says
``num_classes: 2**34`` is refused instead of allocating a 2**34-row classifier.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import torch

from snnkd.errors import SnnkdError

MAX_META_NODES = 20_000
MAX_STR = 4096
RANGES = {"num_classes": (1, 100_000), "in_chans": (1, 64), "img_size": (1, 4096), "T": (1, 1024)}
PLAIN = (str, int, float, bool, type(None))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plain_data(value: Any, where: str, max_nodes: int = MAX_META_NODES) -> None:
    """Refuse anything in ``value`` but JSON-like data (str-keyed dicts, lists, tuples, finite
    numbers, short strings), counting at most ``max_nodes`` nodes (shared references count
    each time, so a self-doubling list is refused without being expanded)."""
    stack = [(value, 0)]
    seen = 0
    while stack:
        v, depth = stack.pop()
        seen += 1
        if seen > max_nodes or depth > 16:
            raise SnnkdError(f"{where} is too large or too deeply nested (more than {max_nodes} values "
                             f"or 16 levels)")
        if isinstance(v, dict):
            bad = next((k for k in v if not isinstance(k, str)), None)
            if bad is not None:
                raise SnnkdError(f"{where} has a non-string key {bad!r:.60}")
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, float) and not math.isfinite(v):
            raise SnnkdError(f"{where} holds a non-finite number ({v})")
        elif isinstance(v, str) and len(v) > MAX_STR:
            raise SnnkdError(f"{where} holds a string of {len(v)} characters (limit {MAX_STR})")
        elif not isinstance(v, PLAIN):
            raise SnnkdError(f"{where} holds a {type(v).__name__}; metadata is plain data")


def _neuron(value: Any, where: str) -> None:
    from snnkd.neurons import NeuronConfig

    if not isinstance(value, dict):
        raise SnnkdError(f"{where}: 'neuron' must be a mapping or null, not {type(value).__name__}")
    known = {f.name for f in fields(NeuronConfig)} - {"extra"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise SnnkdError(f"{where}: 'neuron' has unknown fields {unknown}")
    for k in ("threshold", "width", "decay", "tau"):
        if k in value and not (_is_real(value[k]) or (value[k] is None and k in ("decay", "tau"))):
            raise SnnkdError(f"{where}: neuron {k} must be a finite number, not {value[k]!r:.60}")
    for k in ("kind", "reset", "surrogate"):
        if k in value and not isinstance(value[k], str):
            raise SnnkdError(f"{where}: neuron {k} must be a string, not {value[k]!r:.60}")
    if "detach_reset" in value and not isinstance(value["detach_reset"], bool):
        raise SnnkdError(f"{where}: neuron detach_reset must be true or false")


def check_meta(meta: Any, where: str) -> dict:
    """Validate checkpoint metadata (types, ranges, registered names, consistency with the
    dataset it names); returns it unchanged or raises one :class:`SnnkdError`."""
    from snnkd.data import INFO
    from snnkd.encoding import ENCODERS
    from snnkd.models import list_models
    from snnkd.runtime import META_KEYS

    if not isinstance(meta, dict):
        raise SnnkdError(f"{where}: checkpoint metadata is not a mapping")
    plain_data(meta, f"{where}: checkpoint metadata")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise SnnkdError(f"{where}: checkpoint metadata lacks {', '.join(missing)}")
    bad = f"{where}: invalid checkpoint metadata:"
    for k in ("arch", "kind", "dataset", "encoding"):
        if not isinstance(meta[k], str):
            raise SnnkdError(f"{bad} {k} must be a string, not {meta[k]!r:.60}")
    if meta["arch"] not in list_models():
        raise SnnkdError(f"unknown model {meta['arch']!r:.80}; choose one of {', '.join(list_models())}")
    if meta["kind"] not in ("ann", "snn") or (meta["kind"] == "snn") != bool(meta["neuron"]):
        raise SnnkdError(f"{bad} kind {meta['kind']!r:.40} with neuron {meta['neuron']!r:.80}")
    if meta["neuron"] is not None:
        _neuron(meta["neuron"], where)
    for k, (lo, hi) in RANGES.items():
        if not _is_int(meta[k]) or not lo <= meta[k] <= hi:
            raise SnnkdError(f"{bad} {k} must be an integer in [{lo}, {hi}], not {meta[k]!r:.60}")
    if meta["encoding"] not in ENCODERS:
        raise SnnkdError(f"{bad} unknown encoding {meta['encoding']!r:.60}")
    if meta["dataset"] not in INFO:
        raise SnnkdError(f"{bad} unknown dataset {meta['dataset']!r:.60}")
    info = INFO[meta["dataset"]]
    clash = [f"{k} {meta[k]} (the dataset has {getattr(info, k)})" for k in ("num_classes", "in_chans", "img_size")
             if meta[k] != getattr(info, k)]
    if clash:
        raise SnnkdError(f"{where}: the metadata names dataset {meta['dataset']!r} but says {', '.join(clash)}")
    for k in ("method", "trainer"):
        if meta.get(k) is not None and not isinstance(meta[k], str):
            raise SnnkdError(f"{bad} {k} must be a string, not {type(meta[k]).__name__}")
    if meta.get("params") is not None and not isinstance(meta["params"], dict):
        raise SnnkdError(f"{bad} params must be a mapping")
    if meta.get("conversion") is not None:  # an ANN-to-SNN conversion (snnkd convert)
        from snnkd.convert import check_conversion_meta
        check_conversion_meta(meta, where)
    return meta


def check_state_dict(state: Any, where: str) -> dict:
    """String keys, dense real tensors (floating, integer or bool) only."""
    if not isinstance(state, dict):
        raise SnnkdError(f"{where}: the weights are not a mapping")
    for k, v in state.items():
        if not isinstance(k, str):
            raise SnnkdError(f"{where}: weight names must be strings, found {k!r:.60}")
        if not isinstance(v, torch.Tensor):
            raise SnnkdError(f"{where}: weight {k!r:.80} is a {type(v).__name__}, not a tensor")
        if v.is_complex() or v.layout != torch.strided or v.is_quantized:
            raise SnnkdError(f"{where}: weight {k!r:.80} is a {v.dtype} {v.layout} tensor; weights are dense "
                             f"and real")
    return state


def nonfinite_count(state: dict) -> int:
    """Number of NaN or infinite values over the floating tensors of ``state``."""
    return sum(int((~torch.isfinite(v)).sum()) for v in state.values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())


def check_energy_table(table: Any, where: object) -> dict:
    """``{target: {mac_pj, ac_pj, neuron_update_pj?, source?, description?}}``, every figure a
    finite number >= 0; one error naming the first bad key."""
    if not isinstance(table, dict) or not table:
        raise SnnkdError(f"{where}: an energy table maps target names to {{mac_pj, ac_pj, ...}}")
    for name, t in table.items():
        if not isinstance(name, str) or not isinstance(t, dict):
            raise SnnkdError(f"{where}: an energy table maps target names to {{mac_pj, ac_pj, ...}}; "
                             f"entry {name!r:.60} is not")
        for key in ("mac_pj", "ac_pj"):
            if key not in t:
                raise SnnkdError(f"{where}: {name}.{key} is missing")
        for key, v in t.items():
            if not isinstance(key, str):
                raise SnnkdError(f"{where}: {name} has a non-string key {key!r:.60}")
            if key.endswith("_pj") and not (_is_real(v) and v >= 0):
                raise SnnkdError(f"{where}: {name}.{key} must be a finite number >= 0, not {v!r:.60}")
            if key in ("source", "description") and not isinstance(v, str):
                raise SnnkdError(f"{where}: {name}.{key} must be text")
    return table


def load_energy_table(path: Any = None) -> dict:
    """The energy table at ``path`` (default: the packaged ``snnkd/resources/energy.yaml``), checked."""
    from importlib import resources

    from snnkd import io, safeload

    if path is None:
        text = resources.files("snnkd.resources").joinpath("energy.yaml").read_text(encoding="utf-8")
        return check_energy_table(safeload.yaml_loads(text, "snnkd/resources/energy.yaml"),
                                  "snnkd/resources/energy.yaml")
    return check_energy_table(io.read_yaml(path), path)
