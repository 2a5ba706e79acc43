"""Bounded reading of untrusted files: YAML text, torch zip checkpoints, HDF5 (NIR) files.

Each reader refuses, with one :class:`SnnkdError`, a file whose decoded form would be far
larger than the file itself, before anything of that size is allocated:

* YAML: aliases are refused (an alias bomb of a few hundred bytes expands to gigabytes)
  and nesting is bounded (no ``RecursionError`` on ``[[[[...``);
* torch zip: every entry must be *stored* (``torch.save`` never compresses) with its
  declared size equal to its stored size, so the tensors fit in the file's own size;
  after ``torch.load`` the object is walked once with a node budget, so shared references
  (a list holding itself twice, 40 levels deep) are refused rather than expanded;
* HDF5: every dataset's declared size must be stored in the file (no unwritten chunked
  dataset of shape ``(2**20, 2**20)``), gzip-compressed data may expand at most to
  :data:`MAX_HDF5_BYTES` plus :data:`HDF5_RATIO` times the file size, no soft, external or
  virtual links that would reach outside the file, only plain numeric or string dtypes;
  the readers of ``.nir`` and netx files open them through :func:`check_hdf5_path` and
  :func:`unreadable_as`, and check each array read from them with :func:`checked_array`
  (dtype, dimensions, at most :data:`MAX_ARRAY_ELEMENTS`, finite, bounded below).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from snnkd.errors import SnnkdError

MAX_YAML_BYTES = 4 << 20
MAX_YAML_DEPTH = 100
MAX_PICKLE_BYTES = 64 << 20  # data.pkl holds structure and metadata only; tensors are separate entries
MAX_NODES = 2_000_000  # containers and leaves visited when walking a loaded object
MAX_DEPTH = 64
MAX_HDF5_OBJECTS = 100_000
MAX_HDF5_DEPTH = 32
MAX_HDF5_ELEMENTS = 10**9
MAX_HDF5_BYTES = 64 << 20  # declared bytes allowed beyond HDF5_RATIO x the file size
HDF5_RATIO = 100
SAFE_FILTERS = (1, 2, 3)  # H5Z_FILTER_DEFLATE, SHUFFLE, FLETCHER32
MAX_ARRAY_ELEMENTS = 10**8  # one array read from an HDF5 file (a NIR node's attribute)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# --- YAML ----------------------------------------------------------------------------------------------------

class _Refused(yaml.YAMLError):
    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message if mark is None else f"{message} (line {mark.line + 1}, column {mark.column + 1})")


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases and with nesting bounded to :data:`MAX_YAML_DEPTH`."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _Refused("YAML aliases are not allowed", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _Refused(f"YAML nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def yaml_loads(text: str, source: object = "YAML text") -> Any:
    """Parse ``text`` with :class:`StrictLoader`; any problem is one :class:`SnnkdError`."""
    if len(text) > MAX_YAML_BYTES:
        raise SnnkdError(f"{source} is not valid YAML: larger than {MAX_YAML_BYTES >> 20} MiB")
    loader = None
    try:
        loader = StrictLoader(text)  # its reader refuses non-printable characters right here
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise SnnkdError(f"{source} is not valid YAML: {_first_line(e)}") from None
    except (ValueError, OverflowError, TypeError, RecursionError) as e:  # e.g. date 2020-99-99, a 5000-digit int
        raise SnnkdError(f"{source} is not valid YAML: {_first_line(e)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml_file(path: str | os.PathLike) -> Any:
    """A YAML file, size-bounded, UTF-8, through :func:`yaml_loads`."""
    path = Path(path)
    if not path.is_file():
        raise SnnkdError(f"config file not found: {path}")
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise SnnkdError(f"{path} is not valid YAML: larger than {MAX_YAML_BYTES >> 20} MiB")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SnnkdError(f"{path} is not valid YAML: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise SnnkdError(f"cannot read {path}: {e.strerror or e}") from None
    return yaml_loads(text, path)


# --- torch zip files -----------------------------------------------------------------------------------------

def check_torch_zip(path: Path, what: str) -> None:
    """Refuse a file ``torch.load`` could blow up in memory: not a zip, compressed entries,
    declared sizes beyond the file's size, or an oversized pickle."""
    not_torch = SnnkdError(f"{path} is not a readable {what} (truncated, or not a file written by torch.save)")
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise not_torch from None
    pickles = [i for i in infos if i.filename.endswith("data.pkl")]
    if not pickles:
        raise not_torch
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED:
            raise SnnkdError(f"{path} refused: entry {i.filename!r} is compressed (torch.save stores entries "
                             f"uncompressed; a compressed {what} could expand far beyond its file size)")
        if i.file_size != i.compress_size:
            raise SnnkdError(f"{path} refused: entry {i.filename!r} declares {i.file_size} bytes "
                             f"but stores {i.compress_size}")
    if sum(i.file_size for i in infos) > size:
        raise SnnkdError(f"{path} refused: its entries declare more bytes than the file holds "
                         f"(truncated or crafted {what})")
    if any(i.file_size > MAX_PICKLE_BYTES for i in pickles):
        raise SnnkdError(f"{path} refused: its object structure is over {MAX_PICKLE_BYTES >> 20} MiB")


def check_loaded(obj: Any, path: Path, what: str, max_nodes: int = MAX_NODES) -> None:
    """Walk ``obj`` once (shared references counted each time they are reached) and refuse
    it if it has more than ``max_nodes`` nodes, nests deeper than :data:`MAX_DEPTH`, or holds
    a tensor that is complex, sparse or quantized (loading would drop or misread its values)."""
    import torch

    stack: list[tuple[Any, int]] = [(obj, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > max_nodes:
            raise SnnkdError(f"{path} refused: the {what} holds more than {max_nodes} objects "
                             f"(repeated references expand without bound)")
        if depth > MAX_DEPTH:
            raise SnnkdError(f"{path} refused: the {what} nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((k, depth + 1) for k in node.keys())
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple, set, frozenset)):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, torch.Tensor):
            if node.layout != torch.strided or node.is_quantized:
                raise SnnkdError(f"{path} refused: the {what} holds a {node.layout} tensor "
                                 f"(only dense tensors are read)")
            if node.is_complex():
                raise SnnkdError(f"{path} refused: the {what} holds a complex tensor ({node.dtype}); "
                                 f"weights are real")


# --- HDF5 ----------------------------------------------------------------------------------------------------

def _check_dataset(ds: Any, name: str, path: Path) -> int:
    """Declared elements of the dataset ``ds``; refuses what cannot be read safely."""
    import numpy as np

    dt = ds.dtype
    kind = dt.kind
    if kind == "O":
        import h5py
        if h5py.check_string_dtype(dt) is None:
            raise SnnkdError(f"{path}: dataset {name!r} has an unsupported variable-length type")
    elif kind not in "biufS" or dt.fields is not None or dt.subdtype is not None:
        raise SnnkdError(f"{path}: dataset {name!r} has unsupported type {dt}")
    if ds.is_virtual or ds.external:
        raise SnnkdError(f"{path}: dataset {name!r} takes its data from outside the file")
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if any(f not in SAFE_FILTERS for f in filters):
        raise SnnkdError(f"{path}: dataset {name!r} uses an HDF5 filter snnkd does not read (only gzip, "
                         f"shuffle, fletcher32)")
    shape = ds.shape or ()
    n = int(np.prod(shape, dtype=object)) if ds.shape is not None else 0
    if n > MAX_HDF5_ELEMENTS:
        raise SnnkdError(f"{path}: dataset {name!r} declares {n} elements (limit {MAX_HDF5_ELEMENTS})")
    declared, stored = n * dt.itemsize, ds.id.get_storage_size()
    unwritten = declared > stored if not filters else _missing_chunks(ds) > 0
    if n and unwritten:
        raise SnnkdError(f"{path}: dataset {name!r} declares shape {tuple(shape)} but the file stores only "
                         f"{stored} bytes of it (unwritten or truncated)")
    return declared


def _missing_chunks(ds: Any) -> int:
    """Chunks of a chunked dataset that were never written (read back as fill values)."""
    import math

    expected = math.prod(-(-s // c) for s, c in zip(ds.shape, ds.chunks)) if ds.chunks else 1
    return expected - ds.id.get_num_chunks()


def check_hdf5(path: str | os.PathLike) -> None:
    """Walk an HDF5 file's hard-linked groups and datasets and refuse anything whose reading
    could allocate more than the file stores, or reach outside it (see module docstring)."""
    import h5py

    path = Path(path)
    total = objects = 0
    budget = MAX_HDF5_BYTES + HDF5_RATIO * path.stat().st_size  # gzip can legitimately shrink zeros a lot
    with h5py.File(path, "r") as f:
        stack: list[tuple[Any, str, int]] = [(f, "", 0)]
        while stack:
            group, prefix, depth = stack.pop()
            if depth > MAX_HDF5_DEPTH:
                raise SnnkdError(f"{path}: groups nest deeper than {MAX_HDF5_DEPTH} levels")
            for key in group.keys():
                objects += 1
                if objects > MAX_HDF5_OBJECTS:
                    raise SnnkdError(f"{path}: more than {MAX_HDF5_OBJECTS} objects")
                name = f"{prefix}/{key}"
                link = group.get(key, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise SnnkdError(f"{path}: {name!r} is a {type(link).__name__} (only plain groups and "
                                     f"datasets are read)")
                item = group[key]
                if isinstance(item, h5py.Group):
                    stack.append((item, name, depth + 1))
                elif isinstance(item, h5py.Dataset):
                    total += _check_dataset(item, name, path)
                    if total > budget:
                        raise SnnkdError(f"{path}: datasets declare {total} bytes, more than a file of "
                                         f"{path.stat().st_size} bytes can hold (limit {budget})")
                else:
                    raise SnnkdError(f"{path}: {name!r} is neither a group nor a dataset")


def check_hdf5_path(path: str | os.PathLike, kind: str, noun: str) -> Path:
    """``path`` as an existing HDF5 file, else one error: ``"{kind} file not found: PATH"`` or
    ``"PATH is not {noun} (not HDF5; truncated or foreign)"`` (e.g. ``kind="NIR"``,
    ``noun="a NIR file"``).  Its contents are checked by :func:`check_hdf5`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SnnkdError(f"{kind} file not found: {path}")
    if not h5py.is_hdf5(path):
        raise SnnkdError(f"{path} is not {noun} (not HDF5; truncated or foreign)")
    return path


@contextmanager
def unreadable_as(path: str | os.PathLike, noun: str) -> Iterator[None]:
    """Around the reading of an HDF5 file: a :class:`SnnkdError` passes unchanged, any other
    exception (h5py and its readers raise ``OSError``, ``KeyError``, ``ValueError``... on a
    damaged file) becomes ``"PATH is not a readable {noun} (truncated or foreign): Type: first line"``."""
    try:
        yield
    except SnnkdError:
        raise
    except Exception as e:
        raise SnnkdError(f"{path} is not a readable {noun} (truncated or foreign): "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def checked_array(v: object, where: str, ndims: tuple[int, ...], integer: bool = False, low: float | None = None,
                  strict: bool = False) -> Any:
    """``v`` (a value read from an untrusted file) as a finite real ``numpy`` array with one of
    ``ndims`` dimensions, at most :data:`MAX_ARRAY_ELEMENTS` elements, integer with
    ``integer``, and all values ``>= low`` (``> low`` with ``strict``); else one
    :class:`SnnkdError` naming ``where``."""
    import numpy as np

    try:
        a = np.asarray(v)
    except Exception:  # ragged or exotic objects
        raise SnnkdError(f"{where} is not a numeric array") from None
    if a.dtype.kind not in ("biu" if integer else "biuf") or a.dtype.kind == "b" and not integer:
        raise SnnkdError(f"{where} must be {'integer' if integer else 'real'}, not {a.dtype}")
    if a.ndim not in ndims:
        raise SnnkdError(f"{where} must have {' or '.join(map(str, ndims))} dimensions, not {a.ndim}")
    if a.size > MAX_ARRAY_ELEMENTS:
        raise SnnkdError(f"{where} has {a.size} elements (limit {MAX_ARRAY_ELEMENTS})")
    if not np.isfinite(a).all():
        raise SnnkdError(f"{where} has {int((~np.isfinite(a)).sum())} non-finite values")
    if low is not None and a.size and (a.min() <= low if strict else a.min() < low):
        raise SnnkdError(f"{where} must be {'>' if strict else '>='} {low}")
    return a


def check_same_shape(where: str, **arrays: Any) -> None:
    """One error naming ``where`` and every shape unless all ``arrays`` have the same shape."""
    shapes = {k: a.shape for k, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise SnnkdError(f"{where}: parameter shapes differ: {shapes}")
