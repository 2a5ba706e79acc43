"""``snnkd plot-blockwise``: the blockwise method's figures from its ``metrics.jsonl``.

* ``fig2_cosine.png`` (Yang et al., CVPR 2025, Fig. 2): per replaced stage ``k``, the mean cosine
  similarity between the mapped SNN rates ``phi_k(r_k)`` and the ANN features, per epoch.
* ``fig3_val_acc.png`` (Yang et al., CVPR 2025, Fig. 3): validation accuracy of every hybrid ``M_k``
  and of the SNN, per epoch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from snnkd import io
from snnkd.cli.formatting import examples
from snnkd.errors import SnnkdError
from snnkd.paths import check_paths


def add_parser(sub) -> None:
    p = sub.add_parser("plot-blockwise", help="plot the blockwise method's per-epoch figures",
                       description="Draw fig2_cosine.png and fig3_val_acc.png from a blockwise run's metrics.jsonl.",
                       epilog=examples("snnkd plot-blockwise --metrics runs/blockwise/metrics.jsonl "
                                       "--out runs/blockwise/figures"))
    p.add_argument("--metrics", type=Path, required=True, help="metrics.jsonl of a 'distill --method blockwise' run")
    p.add_argument("--out", type=Path, required=True, help="output directory for the PNGs")
    p.set_defaults(func=run)


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        raise SnnkdError(f"no metrics file {path}")
    try:
        rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    except json.JSONDecodeError as e:
        raise SnnkdError(f"{path} is not JSON lines: {e}") from None
    if not rows or "bw_acc_snn" not in rows[0]:
        raise SnnkdError(f"{path} holds no blockwise metrics (bw_acc_snn); was it written by --method blockwise?")
    return rows


def plot_blockwise(metrics: Path, out: Path) -> list[Path]:
    """Write the two figures; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = read_metrics(metrics)
    epochs = [r["epoch"] for r in rows]
    stages = [k[len("bw_cos_"):] for k in rows[0] if k.startswith("bw_cos_")]
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "fig2_cosine.png", out / "fig3_val_acc.png"]

    n = max(len(stages), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    for ax, st in zip(axes[0], stages):
        ax.plot(epochs, [r[f"bw_cos_{st}"] for r in rows], marker="o")
        ax.set_title(f"M_{st}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cosine similarity")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("mapped SNN rates vs ANN features")
    fig.tight_layout()
    io.save_figure(paths[0], fig, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for st in stages:
        ax.plot(epochs, [r[f"bw_acc_M_{st}"] for r in rows], marker="o", label=f"M_{st}")
    ax.plot(epochs, [r["bw_acc_snn"] for r in rows], marker="s", color="k", label="SNN")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    fig.tight_layout()
    io.save_figure(paths[1], fig, dpi=100)
    plt.close(fig)
    return paths


def run(a: argparse.Namespace) -> int:
    check_paths(inputs={"--metrics": a.metrics}, out_dirs={"--out": a.out},
                outputs={"figure 2": a.out / "fig2_cosine.png", "figure 3": a.out / "fig3_val_acc.png"})
    for p in plot_blockwise(a.metrics, a.out):
        print(p)
    return 0
