"""The one walk over the project's own source files, shared by the tests that scan them
(safe loading, atomic writes, neuron T writes, exporter inputs)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("snnkd", "export")  # the installed package: snnkd and snnkd.export
EVERYTHING = (*LIBRARY, "workflow", "scripts", "benchmarks")


def source_files(roots: tuple[str, ...] = LIBRARY, suffixes: tuple[str, ...] = (".py",),
                 snakefile: bool = False) -> list[Path]:
    """Files under ``roots`` (folders of the checkout) whose suffix is in ``suffixes`` (``""``:
    files without one, such as scripts), sorted; the top-level Snakefile too with ``snakefile``."""
    files = [REPO / "Snakefile"] if snakefile and (REPO / "Snakefile").is_file() else []
    for root in roots:
        if (REPO / root).is_dir():
            files += [p for p in (REPO / root).rglob("*")
                      if p.is_file() and p.suffix in suffixes and "__pycache__" not in p.parts]
    return sorted(files)
