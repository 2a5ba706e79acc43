"""``snnkd methods``: every registered distillation method (plugins too), its paper, its
default trainer, whether it needs a teacher, and its hyperparameters with their defaults
and meaning (the keyword arguments of the class's ``__init__``, explained by ``params_help``)."""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from snnkd.cli.formatting import examples

SUMMARY = "list the distillation methods: paper, trainer, hyperparameters"


def add_parser(sub) -> None:
    p = sub.add_parser("methods", help=SUMMARY,
                       description="List every distillation method that can be named with 'snnkd distill "
                                   "--method' (built-ins and plugins), with its paper, default trainer, "
                                   "whether it needs --teacher, and each hyperparameter (--param KEY=VALUE) "
                                   "with its default and meaning.",
                       epilog=examples("snnkd methods", "snnkd methods --json",
                                       "snnkd --plugin my_methods methods"))
    p.add_argument("--json", action="store_true", help="print the listing as JSON instead of text")
    p.set_defaults(func=run, subparser=p)


def hyperparameters(cls: type) -> list[dict[str, Any]]:
    """``[{"name", "default", "help"}, ...]``: the keyword arguments of ``cls.__init__`` after
    ``student`` and ``teacher``, in order; the meaning from ``cls.params_help``."""
    helps = getattr(cls, "params_help", {}) or {}
    out = []
    for name, prm in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "student", "teacher") or prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD):
            continue
        default = None if prm.default is inspect.Parameter.empty else prm.default
        out.append({"name": name, "default": default, "help": helps.get(name, "")})
    return out


def describe_methods() -> list[dict[str, Any]]:
    """One record per registered method, sorted by name."""
    from snnkd.methods.base import METHODS
    return [{"name": name, "paper": getattr(cls, "paper", "") or "", "default_trainer": cls.default_trainer,
             "needs_teacher": bool(cls.needs_teacher), "hyperparameters": hyperparameters(cls)}
            for name, cls in ((n, METHODS[n]) for n in METHODS.names())]


def as_text(records: list[dict[str, Any]]) -> str:
    lines = []
    for r in records:
        teacher = "needs --teacher" if r["needs_teacher"] else "no teacher"
        lines.append(f"{r['name']}: {r['paper'] or '(no paper given)'}")
        lines.append(f"  default trainer {r['default_trainer']}; {teacher}")
        for h in r["hyperparameters"]:
            meaning = f"  {h['help']}" if h["help"] else ""
            lines.append(f"    --param {h['name']}={json.dumps(h['default'], default=str)}{meaning}")
        if not r["hyperparameters"]:
            lines.append("    (no hyperparameters)")
    return "\n".join(lines)


def run(a: argparse.Namespace) -> int:
    records = describe_methods()
    print(json.dumps(records, indent=2, default=str) if a.json else as_text(records))
    return 0
