"""The Python API of snnkd: the ``snnkd`` commands as functions, and the library pieces beside them.

:func:`pretrain`, :func:`distill` and :func:`evaluate` (of a file) run the very code of the
command line: keyword arguments become the command's options (``limit_train=300`` ->
``--limit-train=300``, ``no_progress=True`` -> ``--no-progress``, ``params={"tau": 4}`` ->
``--param tau=4``), parsed by :func:`snnkd.cli.main.parse_args` with every check the
command makes, then the command runs.  Bad input raises :class:`snnkd.errors.SnnkdError`
(never ``sys.exit``).  Exporting is :mod:`snnkd.export` (``to_nir``, ``to_onnx``, ``to_lava``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from snnkd.cli.inputs import model_inputs
from snnkd.energy import Counts, load_table, price_table
from snnkd.errors import SnnkdError
from snnkd.models.base import StagedNet
from snnkd.ops import count_ops as _count_ops
from snnkd.runtime import load_model as _load_model

__all__ = ["load_model", "pretrain", "distill", "evaluate", "count_ops", "price_energy", "test_inputs", "command_argv",
           "resolve_model", "run_command"]

ALIASES = {"params": "param"}  # Python spellings of a repeatable option's name


def load_model(path: str | os.PathLike) -> tuple[StagedNet, dict]:
    """The model in ``path`` (a ``model.pt`` of pretrain, distill or convert) and its metadata,
    with every check of :func:`snnkd.runtime.load_model` (``weights_only`` loading, schema, finite weights)."""
    return _load_model(path)


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    raise SnnkdError(f"unknown command {command!r}")


def _options(sub: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The command's options by keyword name (``limit_train``, ``T``, ``param``)."""
    skip = (argparse._HelpAction, argparse._VersionAction)
    return {a.dest: a for a in sub._actions if a.option_strings and not isinstance(a, skip)}


def _yaml_value(value: Any) -> str:
    """``value`` as one line of YAML that ``--param KEY=VALUE`` reads back as ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True)
    return text[: -len("\n...\n")] if text.endswith("\n...\n") else text.rstrip("\n")


def _text(value: Any) -> str:
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def command_argv(command: str, options: Mapping[str, Any], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """``snnkd COMMAND`` argv for keyword ``options``: ``True`` adds a flag, ``False``/``None``
    leave an option out, a repeatable option (``param``, also spelt ``params``; ``noise``) takes
    a list or, for ``param``, a mapping.  Every unknown name is refused in one :class:`SnnkdError`."""
    from snnkd.cli.main import build_parser

    known = _options(_subparser(parser or build_parser(), command))
    given = {ALIASES.get(k, k): k for k in options}
    if len(given) < len(options):
        raise SnnkdError(f"{command}: give one of {', '.join(sorted(k for k in options if ALIASES.get(k, k) != k))} "
                         f"and its plain spelling, not both")
    unknown = sorted(k for k in options if ALIASES.get(k, k) not in known)
    if unknown:
        raise SnnkdError(f"{command}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(sorted(known))})")
    argv = [command]
    for key, value in options.items():
        act = known[ALIASES.get(key, key)]
        flag = act.option_strings[-1]
        if isinstance(act, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise SnnkdError(f"{command}: option {key!r} is a flag: True or False, not {value!r:.60}")
            argv += [flag] if value else []
        elif value is None:
            continue
        elif isinstance(act, argparse._AppendAction):
            if isinstance(value, Mapping):  # --param KEY=VALUE, the value written as YAML
                argv += [f"{flag}={k}={_yaml_value(v)}" for k, v in value.items()]
            else:
                argv += [f"{flag}={_text(v)}" for v in ([value] if isinstance(value, (str, os.PathLike)) else value)]
        elif isinstance(value, (bool, list, tuple, dict, set)):
            raise SnnkdError(f"{command}: option {key!r} takes one value, not {type(value).__name__}")
        else:
            argv.append(f"{flag}={_text(value)}")  # one token: a value starting with '-' stays a value
    if any(a.split("=", 1)[1] == "--" for a in argv[1:] if "=" in a):  # argparse drops a bare '--' even inside '--flag=--'
        raise SnnkdError(f"{command}: '--' is not a usable option value")
    return argv


def run_command(command: str, options: Mapping[str, Any], plugins: Iterable[str] = ()) -> argparse.Namespace:
    """Load the plugins, parse ``snnkd COMMAND`` from ``options`` and run it as the command line
    does; a non-zero status (a failed check) raises :class:`SnnkdError`.  Returns the parsed options."""
    from snnkd.cli.main import build_parser, parse_args
    from snnkd.registry import load_plugins, plugin_modules

    load_plugins(plugin_modules([plugins] if isinstance(plugins, str) else list(plugins)))  # before the parser
    parser = build_parser()
    args = parse_args(command_argv(command, options, parser), parser)
    status = int(args.func(args) or 0)
    if status:
        raise SnnkdError(f"snnkd {command} ended with status {status}")
    return args


def pretrain(*, plugins: Iterable[str] = (), **options: Any) -> Path:
    """``snnkd pretrain`` (``model=``, ``dataset=``, ``out=``, ...); returns ``OUT/model.pt``."""
    args = run_command("pretrain", options, plugins)
    return Path(args.out) / "model.pt"


def distill(*, plugins: Iterable[str] = (), **options: Any) -> Path:
    """``snnkd distill`` (``student=``, ``teacher=``, ``method=``, ``params={...}``, ``T=``, ``out=``, ...);
    returns ``OUT/model.pt``."""
    args = run_command("distill", options, plugins)
    return Path(args.out) / "model.pt"


def resolve_model(model: Any, meta: dict | None = None, dataset: str | None = None) -> tuple[StagedNet, dict, Path | None]:
    """``(model, meta, path)`` of a ``model.pt`` path (loaded with :func:`load_model`), of a
    model with its ``meta``, or of the ``(model, meta)`` tuple :func:`load_model` returns
    (``path`` is ``None`` for those).  ``dataset``, when given, must be the model's."""
    path = None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        model, meta = _load_model(path)
    elif isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], dict):
        model, meta = model
    if not isinstance(model, StagedNet):
        raise SnnkdError(f"expected a model.pt path or an snnkd model, not {type(model).__name__}")
    if meta is None:
        raise SnnkdError("an in-memory model needs its metadata: pass meta= (load_model returns it)")
    if dataset is not None and dataset != meta.get("dataset"):
        raise SnnkdError(f"the model belongs to dataset {meta.get('dataset')!r}, not {dataset!r}")
    return model, meta, path


def evaluate(model_or_path: Any, dataset: str | None = None, *, meta: dict | None = None,
             out: str | os.PathLike | None = None, plugins: Iterable[str] = (), **options: Any) -> dict:
    """``snnkd evaluate``: the ``eval.json`` content (accuracy, firing rates, SynOps, energy per target).

    ``model_or_path``: a ``model.pt`` path, or a model with its ``meta`` (or the tuple of
    :func:`load_model`), which is saved to a temporary checkpoint and evaluated by the same
    command.  ``dataset``, when given, must be the model's.  ``out``: also write the JSON there.
    ``options``: the command's (``limit_test=``, ``batch_size=``, ``data_root=``, ``noise=[...]``)."""
    from snnkd import io
    from snnkd.paths import check_paths
    from snnkd.runtime import save_model

    if "model" in options:
        raise SnnkdError("evaluate: give the model as the first argument, not model=")
    if out is not None:
        check_paths(outputs={"out": out})
    with tempfile.TemporaryDirectory(prefix="snnkd-eval-") as tmp:
        path, in_memory = model_or_path, not isinstance(model_or_path, (str, os.PathLike))
        if in_memory or dataset is not None:
            model, meta, _ = resolve_model(model_or_path, meta, dataset)
        if in_memory:
            path = Path(tmp) / "model.pt"
            save_model(path, model, meta)
        target = Path(tmp) / "eval.json"
        run_command("evaluate", {**options, "model": path, "out": target}, plugins)
        result = json.loads(target.read_text())
    if in_memory:  # the temporary file is gone: name no path
        result["model"] = result["options"]["model"] = None
    result["options"]["out"] = None if out is None else _text(out)
    if out is not None:
        io.write_json(out, result)
    return result


def test_inputs(meta: dict, data_root: str | os.PathLike = "data", limit: int | None = None,
                download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: the fixed test subset of ``limit`` samples (all when ``None``) of the model's
    dataset, the samples ``snnkd export`` and ``snnkd energy`` verify on (:func:`snnkd.cli.inputs.model_inputs`)."""
    return model_inputs(meta, data_root, "test", limit, download)


test_inputs.__test__ = False  # not a test, whatever pytest's name rule says


def count_ops(model: StagedNet, batches: Any, device: torch.device | str = "cpu") -> Counts:
    """Per-sample operation counts (:func:`snnkd.ops.count_ops`) over ``batches``: an iterable of
    ``(x, y)`` (a DataLoader), or one ``(x, y)`` pair of tensors."""
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        batches = [batches]
    return _count_ops(model, batches, device)


def price_energy(counts: Counts, table: str | os.PathLike | dict | None = None) -> dict[str, dict[str, Any]]:
    """Energy per sample of ``counts`` on every target of ``table`` (a YAML path or a checked
    mapping; default: the packaged table), :func:`snnkd.energy.price` per target with
    ``total_uj`` added (``None`` where the model does not run there, an ANN on Loihi)."""
    from snnkd.energy import check_table

    targets = check_table(table, "table") if isinstance(table, dict) else load_table(table)
    priced = price_table(counts, targets)
    for e in priced.values():
        e["total_uj"] = None if e["total_pj"] is None else e["total_pj"] / 1e6
    return priced
