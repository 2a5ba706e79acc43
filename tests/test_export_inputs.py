"""Exporters take tensors: no module of ``snnkd.export`` reads a dataset, the CLI's one data
function (``snnkd.cli.inputs.model_inputs``) gives the samples, and no library module uses
another module's private names."""

from __future__ import annotations

import ast
import importlib.util
import inspect
from pathlib import Path

import pytest
import torch
from source_tree import source_files

from snnkd.cli.inputs import model_inputs

ROOT = Path(__file__).resolve().parents[1]
META = {"dataset": "digits"}


def library_files() -> list[Path]:
    return source_files()


def test_no_exporter_reads_a_dataset() -> None:
    offenders = []
    for path in source_files(("export",)):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("snnkd.data", "snnkd.dvs"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id == "build_datasets":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("target", ["snnkd.export.nir_pipeline:export_nir", "snnkd.export.onnx_export:export_onnx",
                                    "snnkd.export.loihi.pipeline:export_lava"])
def test_exporters_take_tensors_not_a_data_root(target: str) -> None:
    module, name = target.split(":")
    params = inspect.signature(getattr(__import__(module, fromlist=[name]), name)).parameters
    assert {"x", "y"} <= set(params) and not {"data_root", "download", "limit"} & set(params), list(params)


def test_test_split_is_a_fixed_subset() -> None:
    x, y = model_inputs(META, "data", "test", 12)
    x2, y2 = model_inputs(META, "data", "test", 12)
    assert x.shape[0] == 12 and y.shape == (12,) and y.dtype == torch.int64
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert torch.equal(model_inputs(META, "data", "test", 5)[0], x[:5])  # a prefix, not a new draw


def test_calibration_batch_is_training_data_and_leaves_the_random_state() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    calib, _ = model_inputs(META, "data", "calibration", 16, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(calib, model_inputs(META, "data", "calibration", 16, seed=0)[0])
    test, _ = model_inputs(META, "data", "test", None)
    flat = test.flatten(1)
    assert not any(bool((flat == c.flatten()).all(1).any()) for c in calib)  # never a test sample
    with pytest.raises(ValueError):
        model_inputs(META, "data", "calibration", 0)
    with pytest.raises(ValueError):
        model_inputs(META, "data", "val", 4)  # type: ignore[arg-type]


def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent is a module, not a package
        return False


def module_aliases(tree: ast.Module) -> set[str]:
    """Local names bound to snnkd modules (``from snnkd.export import nir_check as nc``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "snnkd":
            for a in node.names:
                if is_module(f"{node.module}.{a.name}"):
                    names.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.asname and a.name.split(".")[0] == "snnkd"}
    return names


def test_no_private_name_crosses_modules() -> None:
    offenders = []
    for path in library_files():
        tree = ast.parse(path.read_text())
        aliases = module_aliases(tree)
        for node in ast.walk(tree):
            private = (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                       and node.value.id in aliases and node.attr.startswith("_") and not node.attr.endswith("__"))
            imported = (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("snnkd")
                        and any(a.name.startswith("_") and not a.name.endswith("__") for a in node.names))
            if private or imported:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
