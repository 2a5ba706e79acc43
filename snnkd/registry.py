"""One registry type for everything looked up by name: models, methods, trainers, datasets, encoders.

A :class:`Registry` maps names to objects.  Entries arrive three ways, and only these:

* a decorator in the module that defines them (``@MODELS.register()``, name from the
  function or from the class's ``name`` attribute, or given explicitly);
* the built-in modules the registry imports on first use (every module of
  ``snnkd/methods/``, for example), so adding a method is adding one file;
* plugins: the modules named by the entry points of the registry's group
  (``snnkd.models``, ``snnkd.methods``, ``snnkd.datasets``, ``snnkd.trainers``) of any
  installed distribution, and the modules given to :func:`load_plugins` (``snnkd
  --plugin MODULE``, repeatable, or ``SNNKD_PLUGINS=mod1,mod2``).

A name registered twice is refused (:class:`DuplicateName`); an unknown name raises
:class:`UnknownName`, whose one-line message lists the known names and the closest one.

Checkpoints record their architecture by name only; they never name code to import
(loading a file must not run code).  A checkpoint of a plugin model reloads where the
plugin is installed with an entry point, or with ``--plugin MODULE`` / ``SNNKD_PLUGINS``.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar

from snnkd.errors import SnnkdError

T = TypeVar("T")
PLUGIN_ENV = "SNNKD_PLUGINS"


class RegistryError(SnnkdError):
    """A name problem in a registry."""


class UnknownName(RegistryError, KeyError, ValueError):
    """An unknown name; also a ``KeyError``/``ValueError`` for callers that caught those."""

    def __str__(self) -> str:  # not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


class DuplicateName(RegistryError, ValueError):
    """A name registered a second time."""


def close_match(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest known name, or empty."""
    hit = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean {hit[0]!r}?)" if hit else ""


class Registry(Mapping, Generic[T]):
    """Names -> objects of one kind (``kind`` names it in messages, ``group`` is its entry-point group)."""

    def __init__(self, kind: str, group: str | None = None, builtins: tuple[str, ...] = ()) -> None:
        self.kind, self.group, self.builtins = kind, group, builtins
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._loading = False

    # --- registration ---------------------------------------------------------
    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; a second ``name`` is refused."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries:
            raise DuplicateName(f"{self.kind} {name!r} registered twice "
                                f"({_origin(self._entries[name])} and {_origin(obj)})")
        self._entries[name] = obj
        return obj

    def register(self, name: str | None = None, **attrs: Any) -> Callable[[T], T]:
        """Decorator: register under ``name`` (default: the class's ``name`` attribute, else
        ``__name__``); ``attrs`` are set on the object first (capabilities)."""
        def deco(obj: T) -> T:
            for k, v in attrs.items():
                setattr(obj, k, v)
            key = name
            if key is None and isinstance(obj, type):
                key = getattr(obj, "name", None)
            self.add(key if key is not None else getattr(obj, "__name__", ""), obj)
            return obj
        return deco

    # --- lookup ---------------------------------------------------------------
    def get(self, name: str, default: Any = None) -> Any:  # Mapping.get, without discovery errors hidden
        return self[name] if name in self else default

    def __getitem__(self, name: str) -> T:
        self.load()
        if name not in self._entries:
            raise UnknownName(f"unknown {self.kind} {name!r}{close_match(name, self._entries)}; "
                              f"choose one of {', '.join(self.names()) or '(none registered)'}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self.load()
        return sorted(self._entries)

    # --- discovery ------------------------------------------------------------
    def load(self) -> None:
        """Import the built-in modules and the entry points of ``group`` (once)."""
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for mod in self.builtins:
                importlib.import_module(mod)
            if self.group:
                for ep in metadata.entry_points(group=self.group):
                    self._load_entry_point(ep)
            self._loaded = True
        finally:
            self._loading = False

    def _load_entry_point(self, ep: metadata.EntryPoint) -> None:
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin: one clear line, not a traceback
            raise RegistryError(f"plugin entry point {ep.name} = {ep.value} ({self.group}) failed to load: "
                                f"{type(e).__name__}: {e}") from None
        if not _is_module(obj) and ep.name not in self._entries and obj not in self._entries.values():
            self.add(ep.name, obj)  # an entry point naming the object itself, not its module


def _is_module(obj: Any) -> bool:
    return type(obj).__name__ == "module"


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def plugin_modules(argv_plugins: Iterable[str] = ()) -> list[str]:
    """The plugin modules of this process: ``SNNKD_PLUGINS`` (comma separated), then ``argv_plugins``."""
    env = [m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip()]
    return list(dict.fromkeys([*env, *argv_plugins]))


def load_plugins(modules: Iterable[str], export: bool = False) -> None:
    """Import each plugin module (its decorators register its models, methods, datasets, trainers);
    ``export``: also add them to ``SNNKD_PLUGINS``, so child processes (workflow jobs) import them."""
    modules = list(modules)
    if export and modules:
        os.environ[PLUGIN_ENV] = ",".join(plugin_modules(modules))
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise SnnkdError(f"--plugin {mod}: cannot import it ({e}); is it on PYTHONPATH or installed?") \
                from None


def registries() -> dict[str, Registry]:
    """Every registry of the library, by kind (imports the domain modules)."""
    from snnkd.data import DATASETS
    from snnkd.encoding import ENCODERS
    from snnkd.methods.base import METHODS
    from snnkd.models.registry import MODELS
    from snnkd.train.trainers import TRAINERS
    return {"model": MODELS, "method": METHODS, "trainer": TRAINERS, "dataset": DATASETS, "encoder": ENCODERS}
