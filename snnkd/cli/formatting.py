"""How every ``snnkd`` parser formats its ``--help``: defaults shown, examples kept as written.

Light on purpose (argparse only): the top-level parser imports it, and ``snnkd --help``
must not import torch.
"""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the text already names its default
    or the default says nothing (``None``, ``False``, suppressed); keeps a text that holds line
    breaks (an epilog's examples) as written, and wraps one-paragraph texts (descriptions)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or "%(default)" in text:
            return text
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return text
        if action.default == [] or not (action.option_strings or action.nargs in ("?", "*")):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in textwrap.dedent(text).strip("\n").splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples(*lines: str) -> str:
    """An epilog of example command lines, shown as written under ``examples:``."""
    return "examples:\n" + "\n".join(f"  {ln}" for ln in lines) + "\n"
