"""Distillation methods; importing this package registers every method (one file each).

Every module of this folder is imported, so a new method is one new file (plus its test
file, ``tests/methods/test_<name>.py``): the CLI, ``--help``, the workflow check and the
tests find it through :data:`METHODS`."""

import importlib
import pkgutil

from snnkd.methods.base import (
    METHODS,
    Method,
    MethodOutput,
    build_method,
    freeze,
    get_method,
    list_methods,
    method_params,
    register_method,
)

for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("base", "losses"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["METHODS", "Method", "MethodOutput", "build_method", "freeze", "get_method", "list_methods",
           "method_params", "register_method"]
