"""Every command's paths, resolved and checked together before any work is done.

Each subcommand calls :func:`check_paths` first thing, naming what it reads and what it
writes.  Symbolic links are followed, so two spellings of one file are one file.  Refused,
with one :class:`~snnkd.errors.SnnkdError`:

* an output (file or directory) that equals an input, contains one, or lies inside one
  (``evaluate --model M --out M``, ``distill --teacher D/model.pt --out D``);
* an output inside, or equal to, a read-only tree such as ``--data-root``;
* two outputs at one path (``pretrain --state O/model.pt``), or an output below an output file;
* a dangling or looping symbolic link as an output or as a directory above one;
* an output location that cannot be written (see :func:`snnkd.io.check_writable`);
* a directory that is replaced wholesale (``export --to lava --out``) when it exists, is
  not empty and is not an earlier export written by snnkd (see :func:`snnkd.io.is_replaceable_dir`).

Paths in messages are printed with ``repr``, so a newline in a name cannot fake a line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from snnkd import io
from snnkd.errors import SnnkdError

Paths = Mapping[str, "str | os.PathLike | None"]


def show(path: str | os.PathLike) -> str:
    """``path`` as it is quoted in error messages: ``repr`` of the text."""
    return repr(os.fspath(path))


def resolve_input(path: str | os.PathLike) -> Path:
    """The real location of an input; one that cannot be resolved (a link loop) stays as
    given, since reading it fails later with its own message."""
    try:
        return Path(path).resolve(strict=False)
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def resolve_output(label: str, path: str | os.PathLike) -> Path:
    """The real location of an output; refuses a dangling or looping symbolic link at the
    path or at any directory above it (writing there would fail only after the work)."""
    here = Path(path)
    for p in (here, *here.parents):
        if os.path.lexists(p) and not os.path.exists(p):
            what = "a looping" if _is_loop(p) else "a dangling"
            raise SnnkdError(f"cannot write {label} {show(path)}: {show(p)} is {what} symbolic link")
    try:
        return here.resolve(strict=False)
    except (OSError, RuntimeError) as e:
        raise SnnkdError(f"cannot write {label} {show(path)}: {e}") from None


def _is_loop(path: Path) -> bool:
    try:
        path.resolve(strict=False)
    except RuntimeError:
        return True
    except OSError:
        return False
    return False


def _within(inner: Path, outer: Path) -> bool:
    """``inner`` is ``outer`` or lies somewhere below it (both resolved)."""
    return inner == outer or outer in inner.parents


def _present(paths: Paths | None) -> dict[str, Path]:
    return {k: Path(v) for k, v in (paths or {}).items() if v is not None and os.fspath(v) != ""}


def check_paths(inputs: Paths | None = None, outputs: Paths | None = None, out_dirs: Paths | None = None,
                fresh_dirs: Paths | None = None, trees: Paths | None = None) -> dict[str, Path]:
    """Check a command's paths together, before any work; returns every path resolved.

    ``inputs``: files (or directories) read, never to be written over or into.
    ``outputs``: files written.  ``out_dirs``: directories written into (their files are
    also listed in ``outputs``).  ``fresh_dirs``: directories built anew that replace what
    is there.  ``trees``: read-only directories (``--data-root``) no output may lie inside.
    Keys are the labels the messages use (``"--out"``, ``"metrics file"``); ``None`` values
    are skipped.  Raises :class:`SnnkdError` for the first problem found.
    """
    ins = {k: resolve_input(p) for k, p in _present(inputs).items()}
    tree = {k: resolve_input(p) for k, p in _present(trees).items()}
    dirs = {k: (p, resolve_output(k, p)) for k, p in {**_present(out_dirs), **_present(fresh_dirs)}.items()}
    files = {k: (p, resolve_output(k, p)) for k, p in _present(outputs).items()}
    written = {**dirs, **files}
    given = {**_present(inputs), **_present(trees)}
    for wk, (wp, w) in written.items():
        for ik, i in ins.items():
            if w == i:
                raise SnnkdError(f"{wk} {show(wp)} is the input {ik} {show(given[ik])}: refusing to overwrite it")
            if _within(i, w):
                raise SnnkdError(f"{wk} {show(wp)} contains the input {ik} {show(given[ik])}: "
                                 f"choose an output that does not hold the inputs")
            if _within(w, i):
                raise SnnkdError(f"{wk} {show(wp)} lies inside the input {ik} {show(given[ik])}")
        for tk, t in tree.items():
            if _within(w, t):
                raise SnnkdError(f"{wk} {show(wp)} lies inside {tk} {show(given[tk])}, which is only read")
    keys = list(written)
    for n, ak in enumerate(keys):
        for bk in keys[n + 1:]:
            (ap, a), (bp, b) = written[ak], written[bk]
            if a == b:
                raise SnnkdError(f"{ak} {show(ap)} and {bk} {show(bp)} are the same path: one would overwrite the other")
            for (xk, xp, x), (yk, yp, y) in (((ak, ap, a), (bk, bp, b)), ((bk, bp, b), (ak, ap, a))):
                if xk in files and _within(y, x):
                    raise SnnkdError(f"{yk} {show(yp)} lies below the output file {xk} {show(xp)}")
    for p, _ in dirs.values():
        io.check_dir_writable(p)
    for k in _present(fresh_dirs):
        p = dirs[k][0]
        if not io.is_replaceable_dir(p):
            raise SnnkdError(f"{k} {show(p)} exists and is not an empty directory or an earlier snnkd export "
                             f"(no {io.EXPORT_STAMP} stamp in it): refusing to replace it")
    for p, _ in files.values():
        io.check_writable(p)
    return {**ins, **tree, **{k: r for k, (_, r) in written.items()}}
