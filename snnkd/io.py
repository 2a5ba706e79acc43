"""Atomic writes and safe checkpoint loading.

Every output is written to a temporary file in the same directory and renamed into
place (``os.replace`` is atomic on POSIX), so a killed process never leaves a
half-written file under the final name.  Checkpoints are plain dicts of tensors and
JSON-like metadata, loaded with ``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
import yaml

from snnkd.errors import SnnkdError

CHECKPOINT_FORMAT = "snnkd-checkpoint/1"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask is process-wide


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise SnnkdError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
            os.replace(tmp, path)
        except OSError as e:
            raise SnnkdError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise SnnkdError(f"cannot write {path}: {e.strerror}") from None  # a writer met a full disk
        raise


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files that a killed writer of ``path`` left beside it
    (``.NAME.*.tmp``); returns what was removed.  Call only while no one else writes ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return stale


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output path that cannot be written: one that is a
    directory, under a file, or in a directory without write permission.  Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise SnnkdError(f"cannot write {path}: it is a directory")
    if path.exists() and not path.is_file():
        raise SnnkdError(f"cannot write {path}: it exists and is not a regular file")
    _check_nearest_dir(path, path.parent)


def _check_nearest_dir(path: Path, start: Path) -> None:
    """The nearest existing directory at or above ``start`` must be one we may write in."""
    parent = start
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SnnkdError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SnnkdError(f"cannot write {path}: no write permission in {parent}")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path``, on
    failure it is deleted, so ``path`` is never half-built.  Only an empty directory or an
    earlier one written here (holding the :data:`EXPORT_STAMP` file, which this writes into
    every directory it builds) is replaced: anything else at ``path`` is refused, before the
    work and again before the swap.  The directory gets the usual mode (not mkdtemp's 0700)."""
    path = Path(path)
    _refuse_unreplaceable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise SnnkdError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        yield tmp
        try:
            (tmp / EXPORT_STAMP).write_text("written by snnkd; the directory is replaced on re-export\n")
            os.chmod(tmp, 0o777 & ~_UMASK)
        except OSError as e:
            raise SnnkdError(f"cannot write {path}: {e.strerror or e}") from None
        _refuse_unreplaceable(path)
        _swap_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_dir(tmp: Path, path: Path) -> None:
    """Put directory ``tmp`` at ``path``; an old directory there is removed only once the new one is in place."""
    try:
        if not os.path.lexists(path):
            os.replace(tmp, path)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except OSError:
            os.replace(old / path.name, path)  # put the previous export back
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise SnnkdError(f"cannot write {path}: {e.strerror or e}") from None


def _refuse_unreplaceable(path: Path) -> None:
    if not is_replaceable_dir(path):
        raise SnnkdError(f"{path} exists and is not an empty directory or an earlier snnkd export "
                         f"(no {EXPORT_STAMP} stamp in it): refusing to replace it")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # e.g. the disk is full
            raise SnnkdError(f"cannot write {path}: {e.strerror or e}") from None


def write_stream(path: str | os.PathLike, src: BinaryIO) -> None:
    """Copy the binary stream ``src`` to ``path`` atomically (for files too big to hold twice)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            shutil.copyfileobj(src, f)
            f.flush()
            os.fsync(f.fileno())


def save_figure(path: str | os.PathLike, fig: Any, **savefig_kwargs: Any) -> None:
    """Matplotlib ``fig.savefig`` atomically; the format comes from ``path``'s suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or None, **savefig_kwargs)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def _non_finite_at(obj: Any, where: str = "") -> tuple[str, float] | None:
    """The key path and value of the first NaN or infinity inside ``obj`` (None if none)."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where or "the value", obj)
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        found = _non_finite_at(v, f"{where}.{k}" if where else str(k))
        if found is not None:
            return found
    return None


def strict_json(obj: Any, path: str | os.PathLike, **dumps_kwargs: Any) -> str:
    """``json.dumps(obj, allow_nan=False)``: strict JSON, which has no NaN or infinity.  A
    non-finite number anywhere in ``obj`` raises :class:`SnnkdError` naming ``path`` (the file
    it was meant for) and the key holding it, so no file ever holds a bare ``NaN``."""
    try:
        return json.dumps(obj, allow_nan=False, **dumps_kwargs)
    except ValueError:
        found = _non_finite_at(obj)
        if found is None:
            raise
        raise SnnkdError(f"refusing to write {str(path)!r}: {found[0]!r} is {found[1]}, not a finite number "
                         "(a diverged or NaN-weight model?)") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as strict, indented JSON (see :func:`strict_json`), atomically."""
    write_text(path, strict_json(obj, path, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """One strict-JSON line per row (see :func:`strict_json`), atomically."""
    write_text(path, "".join(strict_json(r, path) + "\n" for r in rows))


def write_yaml(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def load_torch(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with one clear error for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise SnnkdError(f"{what} not found: {path}")
    from snnkd import safeload

    safeload.check_torch_zip(path, what)  # bounded before anything is allocated
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SnnkdError(f"{path} is not a readable {what} (truncated or not a torch file): {msg}") from None
    except Exception as e:  # pickle.UnpicklingError from the weights-only unpickler
        if type(e).__name__ == "UnpicklingError" and not zipfile.is_zipfile(path):
            raise SnnkdError(f"{path} is not a readable {what} (truncated, or not a file written by "
                             f"torch.save)") from None
        if type(e).__name__ == "UnpicklingError":
            raise SnnkdError(f"{path} refused: it holds objects other than tensors and plain data "
                             f"(weights-only loading will not run code from a file)") from None
        raise SnnkdError(f"{path} is not a readable {what}: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None
    safeload.check_loaded(obj, path, what)
    return obj


def save_checkpoint(path: str | os.PathLike, state_dict: dict, meta: dict) -> None:
    """A model file: ``{"format", "meta", "state_dict"}``; ``meta`` says how to rebuild it."""
    save_torch(path, {"format": CHECKPOINT_FORMAT, "meta": meta, "state_dict": state_dict})


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """Return ``(state_dict, meta)`` of a model file written by :func:`save_checkpoint`."""
    obj = load_torch(path)
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise SnnkdError(f"{path} is not an snnkd model checkpoint (missing format tag {CHECKPOINT_FORMAT!r})")
    if not isinstance(obj.get("meta"), dict) or not isinstance(obj.get("state_dict"), dict):
        raise SnnkdError(f"{path} is an snnkd checkpoint without meta or weights")
    from snnkd.validate import check_state_dict

    return check_state_dict(obj["state_dict"], str(path)), obj["meta"]


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file without aliases and with bounded size and nesting (:mod:`snnkd.safeload`)."""
    from snnkd import safeload

    return safeload.read_yaml_file(path)


# --- output locations (paths.check_paths builds on these) -----------------------------------------------------

EXPORT_STAMP = ".snnkd-export"  # in every directory atomic_dir builds: such a directory may be replaced
_LEGACY_EXPORT_FILES = {"model.nir", "network.json", "network.npz", "network.net"}  # a lava export before stamps


def is_replaceable_dir(path: str | os.PathLike) -> bool:
    """Whether a directory built by :func:`atomic_dir` may replace ``path``: nothing is
    there, an empty directory, one holding the :data:`EXPORT_STAMP` file, or a Lava export
    written before stamps existed (only its own files, ``network.json`` among them)."""
    path = Path(path)
    if not os.path.lexists(path):
        return True
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return not names or (path / EXPORT_STAMP).is_file() or ("network.json" in names and names <= _LEGACY_EXPORT_FILES)


def check_dir_writable(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output directory that cannot be written: an existing
    non-directory, or a directory (or the nearest existing one above it) without write
    permission.  Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SnnkdError(f"cannot write {path}: {path} is not a directory")
    _check_nearest_dir(path, path)
