"""Export of trained snnkd models to neuromorphic formats and targets.

* :mod:`snnkd.export.deploy`      -- inference copy of a model: BatchNorm folded, one time step per call
* :mod:`snnkd.export.nir_export`  -- NIR graph through ``nirtorch.torch_to_nir``
* :mod:`snnkd.export.nir_check`   -- reading ``.nir`` files safely, re-import and agreement checks
* :mod:`snnkd.export.onnx_export` -- ANN and time-unrolled SNN to ONNX, checked with onnxruntime
* :mod:`snnkd.export.loihi.quant` -- Loihi fixed-point quantisation of a NIR graph
* :mod:`snnkd.export.loihi.netx` -- lava-dl netx HDF5 for sequential nets
* :mod:`snnkd.export.loihi.graph`  -- Lava process graphs (residual nets included)
* :mod:`snnkd.export.loihi.run`    -- running them in Lava's ``Loihi2SimCfg(select_tag='fixed_pt')``
* :mod:`snnkd.export.energy`      -- per-layer operation counts on the exported graph, energy per target

From Python, :func:`to_nir`, :func:`to_onnx` and :func:`to_lava` export a model (a ``model.pt``
path, ``(model, meta)`` from :func:`snnkd.load_model`, or a model with ``meta=``) and return
the verification report ``snnkd export`` writes.  Their test inputs are the tensors ``x``,
``y`` when given, else the fixed test subset of ``limit`` samples read from ``data_root``
(:func:`snnkd.cli.inputs.model_inputs`, the command's samples).  Importing this package
stays cheap: the exporters load on the first call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["to_nir", "to_onnx", "to_lava"]

PathLike = str | os.PathLike


def _prepare(model: Any, meta: dict | None, target: str, x: torch.Tensor | None, y: torch.Tensor | None,
             data_root: PathLike, limit: int | None, download: bool, outputs: dict | None,
             fresh: dict | None = None, reads_data: bool = False):
    """The model, its metadata and the test inputs, every path checked before any work (as the command);
    ``reads_data``: more than the test inputs comes from ``data_root``."""
    from snnkd.api import resolve_model, test_inputs
    from snnkd.convert import refuse_export
    from snnkd.errors import SnnkdError
    from snnkd.paths import check_paths

    model, meta, path = resolve_model(model, meta)
    refuse_export(meta, str(path or "the model"), target)
    if (x is None) != (y is None):
        raise SnnkdError(f"{target} export: give both x and y, or neither (then they come from data_root)")
    check_paths(inputs={"model": path}, trees={"data_root": data_root} if x is None or reads_data else None,
                outputs=outputs, fresh_dirs=fresh)
    if x is None:
        x, y = test_inputs(meta, data_root, limit, download)
    return model, meta, x, y


def to_nir(model: Any, path: PathLike, meta: dict | None = None, *, x: torch.Tensor | None = None,
           y: torch.Tensor | None = None, data_root: PathLike = "data", limit: int | None = None,
           download: bool = False, dt: float = 1e-4, third_party: bool = True, seed: int = 0) -> dict:
    """``snnkd export --to nir``: write the NIR graph to ``path`` and return the report (round trip,
    ``nirtorch`` and, when installed, ``spikingjelly`` spike agreement with the PyTorch SNN)."""
    from snnkd.export.nir_pipeline import export_nir

    model, meta, x, y = _prepare(model, meta, "nir", x, y, data_root, limit, download, {"path": path})
    return export_nir(model, meta, path, x, y, dt=dt, third_party=third_party, seed=seed)


def to_onnx(model: Any, path: PathLike, meta: dict | None = None, *, x: torch.Tensor | None = None,
            y: torch.Tensor | None = None, data_root: PathLike = "data", limit: int | None = None,
            download: bool = False, atol: float = 1e-4, seed: int = 0) -> dict:
    """``snnkd export --to onnx``: write the ANN, or the SNN unrolled over ``T``, to ``path`` and
    return the onnxruntime check (``within_tolerance`` is ``False`` where the command fails)."""
    from snnkd.export.onnx_export import export_onnx

    model, meta, x, y = _prepare(model, meta, "onnx", x, y, data_root, limit, download, {"path": path})
    return export_onnx(model, meta, path, x, y, atol=atol, seed=seed)


def to_lava(model: Any, out: PathLike, meta: dict | None = None, *, x: torch.Tensor | None = None,
            y: torch.Tensor | None = None, data_root: PathLike = "data", limit: int | None = 100,
            download: bool = False, calib: torch.Tensor | None = None, calibrate: int = 0,
            whole_test_set: bool = True, timeout: int = 600, nir_path: PathLike | None = None, seed: int = 0) -> dict:
    """``snnkd export --to lava``: build the Loihi fixed-point network in the directory ``out``,
    run it in Lava on the test inputs and return the comparison with PyTorch.  ``calib``:
    training images for the quantisation scales (default: drawn from ``data_root`` as the
    command does); ``whole_test_set``: also run the bit-exact emulator on every test image."""
    from snnkd.cli.inputs import model_inputs
    from snnkd.export.loihi.pipeline import CALIBRATION_SAMPLES, export_lava

    model, meta, x, y = _prepare(model, meta, "lava", x, y, data_root, limit, download,
                                 None, {"out": out}, reads_data=calib is None or whole_test_set)
    if calib is None:
        calib = model_inputs(meta, data_root, "calibration", max(calibrate, CALIBRATION_SAMPLES), download, seed)[0]
    whole = model_inputs(meta, data_root, "test", None, download) if whole_test_set else None
    return export_lava(model, meta, Path(out), x, y, calib, calibrate=calibrate, timeout=timeout,
                       nir_path=nir_path, seed=seed, whole_set=whole)
