"""Tests mirror the package: every registered method has tests/methods/test_<name>.py with
one :class:`MethodContract` subclass for it (no hand-kept list of methods anywhere)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from method_helpers import MethodContract

from snnkd.methods import list_methods

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("name", list_methods())
def test_method_has_a_test_file_with_the_contract(name):
    path = HERE / f"test_{name}.py"
    assert path.is_file(), f"method {name!r} has no test file {path.name}"
    spec = importlib.util.spec_from_file_location(f"_contract_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    contracts = [v for v in vars(mod).values()
                 if isinstance(v, type) and issubclass(v, MethodContract) and v is not MethodContract]
    assert [c.name for c in contracts] == [name]
