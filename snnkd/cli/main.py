"""The ``snnkd`` command: one subcommand per pipeline step.

Each subcommand lives in its own module under ``snnkd.cli`` exposing
``add_parser(subparsers)``; adding a step means adding its module name and one-line summary
to ``SUBCOMMANDS``.  Only the module of the command being run (or asked for ``--help``) is
imported, so ``snnkd --help`` lists the commands without importing torch.
Errors in user input end as one line ``snnkd: error: ...`` and exit status 2; any other
exception escaping a command ends as one such line too (exit 1), with the traceback only
under ``snnkd --debug`` (or ``SNNKD_DEBUG=1``).  Control characters in a message (a newline
in a path) are escaped, so the error is always exactly one line.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import traceback
from typing import NoReturn

from snnkd import __version__
from snnkd.cli.formatting import HelpFormatter, examples
from snnkd.errors import SnnkdError
from snnkd.registry import load_plugins, plugin_modules

#: module under ``snnkd.cli`` -> the one line ``snnkd --help`` shows for it (the module passes
#: the same text as its parser's ``help``; tests/test_cli_usability.py checks they agree)
SUBCOMMANDS = {
    "pretrain": "train an ANN teacher",
    "distill": "train an SNN student from an ANN teacher",
    "convert": "ANN-to-SNN conversion of a teacher (robust percentile normalisation)",
    "evaluate": "accuracy, firing rates, SynOps and energy of a model",
    "export": "export a model to NIR, ONNX or Loihi (Lava) and verify it",
    "energy": "operation counts on the exported graph and energy per target",
    "plot_blockwise": "plot the blockwise method's per-epoch figures",
    "methods": "list the distillation methods: paper, trainer, hyperparameters",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors raise :class:`SnnkdError` instead of
    printing the whole usage, so every bad option ends as the one ``snnkd: error:`` line.
    Options are never abbreviated (``--stud`` is not ``--student``), and ``--help`` shows
    every default (:class:`snnkd.cli.formatting.HelpFormatter`)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise SnnkdError(f"{message} (see '{self.prog} --help')")


def command_name(module: str) -> str:
    """The command line's name of a subcommand module (``plot_blockwise`` -> ``plot-blockwise``)."""
    return module.replace("_", "-")


def requested_command(argv: list[str]) -> str:
    """The subcommand module ``argv`` runs (its first word), or ``""`` when it names none."""
    if not argv:
        return ""
    name = argv[0].replace("-", "_")
    return name if name in SUBCOMMANDS else ""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``snnkd`` parser.  ``command``: build only that subcommand's parser in full (the
    others are one-line entries of the listing); ``None``: all of them (imports every module)."""
    p = OneLineErrorParser(prog="snnkd", description="ANN-to-SNN knowledge distillation pipeline",
                           epilog=examples("snnkd pretrain --model vgg_tiny --dataset digits --out runs/teacher",
                                           "snnkd distill --student vgg_tiny --teacher runs/teacher/model.pt "
                                           "--method logit --out runs/logit",
                                           "snnkd methods", "snnkd COMMAND --help"))
    p.add_argument("--version", action="version", version=f"snnkd {__version__}")
    p.add_argument("--debug", action="store_true",
                   help="print the traceback of an error (before the command; also SNNKD_DEBUG=1)")
    p.add_argument("--plugin", action="append", default=None, metavar="MODULE",
                   help="import MODULE first, so the models, methods, datasets and trainers it registers "
                        "can be named (repeatable, before the command; also SNNKD_PLUGINS=mod1,mod2; "
                        "installed plugins load through their entry points without it)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in SUBCOMMANDS.items():
        if command is not None and name != command:
            sub.add_parser(command_name(name), help=summary, add_help=False)  # listed, not imported
            continue
        try:
            mod = importlib.import_module(f"snnkd.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"snnkd.cli.{name}":
                continue
            raise
        mod.add_parser(sub)
    return p


def _blame_config(parser: argparse.ArgumentParser, command: str, tokens: list[str], path: object) -> None:
    """If the config file's values alone fail to parse, raise that error naming the file."""
    try:
        parser.parse_args([command, *tokens])
    except SnnkdError as e:
        if not str(e).startswith("the following arguments are required"):
            raise SnnkdError(f"{path}: {e}") from None


def parse_args(argv: list[str], parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Options of ``snnkd ARGV``: ``--config`` values first, the command line over them.
    Any problem raises :class:`SnnkdError`."""
    parser = parser or build_parser(requested_command(argv))
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is not None:
        from snnkd.cli.common import config_tokens
        tokens = config_tokens(args.subparser, args.config)
        try:
            args = parser.parse_args([argv[0], *tokens, *argv[1:]])
        except SnnkdError:
            _blame_config(parser, argv[0], tokens, args.config)
            raise
    return args


def one_line(message: str) -> str:
    """``message`` with every control or separator character escaped (``\\n``, ``\\x1b``), so
    it prints as exactly one line whatever the paths in it hold."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)


def describe(e: BaseException) -> tuple[str, int]:
    """The error line's text for an exception that escaped a command, and the exit status."""
    if isinstance(e, SnnkdError):
        return str(e), 2
    if isinstance(e, RecursionError):
        return "input nested too deeply to process (RecursionError)", 2
    if isinstance(e, MemoryError):
        return "out of memory (MemoryError): the input or the job is too large for this machine", 1
    if isinstance(e, OSError):
        where = " ".join(repr(os.fsdecode(f)) for f in (e.filename, e.filename2) if f is not None)
        if e.errno == errno.ENOSPC:
            return f"no space left on device{' writing ' + where if where else ''}", 1
        what = e.strerror or str(e) or type(e).__name__
        return f"{where + ': ' if where else ''}{what} ({type(e).__name__})", 1
    text = str(e).strip().splitlines()
    detail = f": {text[0]}" if text else ""
    return f"internal error {type(e).__name__}{detail} (run 'snnkd --debug ...' for the traceback)", 1


def global_options(argv: list[str], debug: bool) -> tuple[bool, list[str]]:
    """Remove the global ``--debug`` and ``--plugin MODULE`` options that precede the command
    from ``argv`` (in place); return the debug flag and the plugin modules."""
    plugins: list[str] = []
    while argv and (argv[0] == "--debug" or argv[0] == "--plugin" or argv[0].startswith("--plugin=")):
        flag = argv.pop(0)
        if flag == "--debug":
            debug = True
        elif flag.startswith("--plugin="):
            plugins.append(flag.split("=", 1)[1])
        elif not argv or argv[0].startswith("-"):
            raise SnnkdError("argument --plugin: expected one argument (a module name)")
        else:
            plugins.append(argv.pop(0))
    if any(not m for m in plugins):
        raise SnnkdError("argument --plugin: expected a module name, got an empty one")
    return debug, plugins


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("SNNKD_DEBUG", "") not in ("", "0")
    try:
        debug, plugins = global_options(argv, debug)
    except SnnkdError as e:
        print(f"snnkd: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    try:
        load_plugins(plugin_modules(plugins))  # before the parser lists the registered names
        args = parse_args(argv)
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:  # Ctrl-C, or a signal turned into one (export's Lava runner)
        signum = getattr(e, "signum", signal.SIGINT)
        print("snnkd: interrupted", file=sys.stderr)
        return 128 + int(signum)
    except Exception as e:  # every error ends as one line; SystemExit (--help, --version) passes
        if debug:
            traceback.print_exc(file=sys.stderr)
        message, status = describe(e)
        print(f"snnkd: error: {one_line(message)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
