"""Helpers shared by the report's figure scripts (plots.py, plots_runs.py): saving, labels,
panel grids, and the "no data for this grid" figure that keeps every declared output present."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from snnkd import io  # noqa: E402

NO_DATA = "no data for this grid"


def save(fig, path: str | Path) -> None:
    """Lay out, write as PNG (atomically: a failed write leaves no half-written file), free the figure."""
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    io.save_figure(path, fig, dpi=110)
    plt.close(fig)


def no_data(path: str | Path, title: str, why: str = "") -> None:
    """A figure that says the grid holds nothing to draw here (so the report's outputs all exist)."""
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.text(0.5, 0.5, NO_DATA + (f"\n({why})" if why else ""), ha="center", va="center", fontsize=12)
    ax.set_title(title)
    ax.set_axis_off()
    save(fig, path)


def panels(n: int, width: float = 5.0, height: float = 3.8, cols: int = 3):
    """A figure with ``n`` panels (at most ``cols`` per row); unused grid cells are removed."""
    ncols = max(1, min(n, cols))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def label(key: tuple) -> str:
    """Legend text of one (dataset, teacher, student, method, trainer, T) group."""
    _dataset, teacher, student, method, trainer, T = key
    if method == "convert":
        return f"{student} ANN-to-SNN conversion T{T}"
    return f"{student} {method} {trainer} T{T}" + (f" ({teacher})" if teacher != "none" else "")


def run_name(rec: dict) -> str:
    """Short name of one run (one seed) for bar labels."""
    return f"{rec['student']} {rec['method']} {rec['trainer']} T{rec['T']} s{rec['seed']}"
