"""Lava (lava-nc 0.10) on Python >= 3.11: the one source fix it needs, applied at import.

Python 3.11's ``dataclasses`` refuses an unhashable dataclass instance as a field
default.  ``lava/magma/compiler/var_model.py`` declares ``ByteEncoder`` as a plain
``@dataclass`` (so ``__hash__ = None``) and uses ``ByteEncoder()`` as the default of
fields of ``CoreEncoder``/``ChipEncoder``, so ``import lava.magma.compiler...`` fails with
``ValueError: mutable default <class '...ByteEncoder'> for field x is not allowed``.
Declaring it ``@dataclass(unsafe_hash=True)`` restores the Python 3.10 behaviour (the
default is shared, as it always was there; Lava never mutates it).

:func:`install` puts an import hook on ``sys.meta_path`` that, when exactly that module
is imported, reads its source, replaces exactly that one decorator line and compiles
the result under the original file name.  If the text is not found (another Lava
version), the import fails loudly with :class:`LavaCompatError` instead of running
unpatched code.  Nothing in site-packages is edited.  Call :func:`install` before the
first ``import lava...`` (``snnkd.export.loihi.run`` does).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

TARGET = "lava.magma.compiler.var_model"
OLD = "@dataclass\nclass ByteEncoder:"
NEW = "@dataclass(unsafe_hash=True)\nclass ByteEncoder:"


class LavaCompatError(ImportError):
    """The expected Lava source text was not found: this Lava version is not supported."""


def patch_source(source: str) -> str:
    """Return ``source`` with ``ByteEncoder`` made hashable; raise if the text is absent."""
    if source.count(OLD) != 1:
        raise LavaCompatError(
            f"snnkd.export.loihi.compat: expected exactly one {OLD!r} in {TARGET}; found {source.count(OLD)}. "
            "This Lava version differs from lava-nc 0.10.0, which the fix was written for.")
    return source.replace(OLD, NEW)


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Loads the target module from its patched source (no bytecode cache)."""

    def get_code(self, fullname: str):
        path = self.get_filename(fullname)
        with open(path, encoding="utf-8") as f:
            source = patch_source(f.read())
        return compile(source, path, "exec", dont_inherit=True)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        loader = _PatchingLoader(fullname, spec.origin)
        return importlib.util.spec_from_file_location(fullname, spec.origin, loader=loader,
                                                      submodule_search_locations=None)


def needed() -> bool:
    return sys.version_info >= (3, 11)


def install() -> None:
    """Install the hook once (a no-op before Python 3.11 or if already installed)."""
    if not needed() or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    if TARGET in sys.modules:
        raise LavaCompatError(f"{TARGET} was imported before snnkd.export.loihi.compat.install()")
    sys.meta_path.insert(0, _Finder())


def import_lava() -> ModuleType:
    """Install the fix and import Lava's core; one clear error if Lava is not installed."""
    install()
    try:
        import lava.magma.compiler.var_model as vm
        import lava.magma.core.run_configs  # noqa: F401
    except ModuleNotFoundError as e:
        raise ImportError(f"Lava is not installed ({e}); run scripts/setup.sh (extra 'lava')") from None
    return vm
