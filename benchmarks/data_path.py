"""Share of a training step spent loading data: torchvision's per-sample PIL path (before)
against snnkd's in-memory uint8 path with batched transforms (after, snnkd.inmemory).

    python benchmarks/data_path.py                      # Fashion-MNIST (Debian's copy or data/)
    python benchmarks/data_path.py --dataset mnist --batches 100

For each path the same training subset is iterated by a shuffled ``DataLoader``
(``num_workers=0``, as snnkd trains by default) and the median time per batch is taken;
each network's train step (forward, cross-entropy, backward, SGD; snnkd's BPTT trainer)
is timed on batches fetched beforehand.  The share of data loading is
``load / (load + step)``.  Networks: the ANN teacher ``resnet_fm_wide`` and the spiking
student ``mnist_2conv_s`` (IF, T = 4), at each ``--precision``.  The batches of both
paths are checked to be bit-identical first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import _train_step  # noqa: E402  (the same step as train_step.py)


def _loaders(name: str, root: str, batch: int, seed: int) -> tuple[DataLoader, DataLoader]:
    from torchvision import datasets as tvd

    from snnkd.data import build_datasets, build_transforms, dataset_info

    train, _, _ = build_datasets(name, root)
    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name]
    old = Subset(cls(root, train=True, transform=build_transforms(dataset_info(name), True)), train.indices)

    def loader(ds):
        return DataLoader(ds, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return loader(old), loader(train)


def _per_batch(loader: DataLoader, n: int) -> float:
    """Median seconds per batch over ``n`` batches (after one warm-up batch)."""
    times, it = [], iter(loader)
    next(it)
    for _ in range(n):
        t = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _step_time(arch: str, T: int | None, batches: list, precision: str, steps: int) -> float:
    """Median seconds of one train step, the step of train_step.py (``_train_step``) on a
    28x28 one-channel net."""
    from snnkd.methods import build_method
    from snnkd.models import create_model
    from snnkd.neurons import NeuronConfig
    from snnkd.train.trainers import get_trainer

    torch.manual_seed(0)
    net = create_model(arch, None, 10, 1, 28) if T is None else create_model(arch, NeuronConfig(), 10, 1, 28, T)
    net.train()
    setup = (net, build_method("none", net, None, {}), get_trainer("bptt"),
             torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9))
    times = []
    for i in range(steps + 1):
        x, y = batches[i % len(batches)]
        t = time.perf_counter()
        _train_step(setup, x, y, precision)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion_mnist", choices=["fashion_mnist", "mnist"])
    p.add_argument("--data-root", default="data")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=60, help="batches timed per data path")
    p.add_argument("--steps", type=int, default=10, help="train steps timed per network")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    old, new = _loaders(a.dataset, a.data_root, a.batch_size, 0)
    xo, yo = next(iter(old))
    xn, yn = next(iter(new))
    same = torch.equal(xo, xn) and torch.equal(yo, yn)
    print(f"{a.dataset}, batch {a.batch_size}, {a.threads} thread(s); first batch bit-identical: {same}")
    if not same:
        raise SystemExit("data_path: the two paths give different batches")
    load = {"per-sample PIL (before)": _per_batch(old, a.batches), "in-memory uint8 (after)": _per_batch(new, a.batches)}
    batches = [b for _, b in zip(range(4), new, strict=False)]
    print("data loading per batch: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in load.items())
          + f"  ({load['per-sample PIL (before)'] / load['in-memory uint8 (after)']:.0f}x)")
    print(f"\n| network | precision | step (ms) | {' | '.join(f'share {k}' for k in load)} |")
    print("|---|---|---:|" + "---:|" * len(load))
    for arch, T, label in [("resnet_fm_wide", None, "ANN resnet_fm_wide"), ("mnist_2conv_s", 4, "SNN mnist_2conv_s T=4")]:
        for pr in a.precision:
            step = _step_time(arch, T, batches, pr, a.steps)
            shares = " | ".join(f"{100 * v / (v + step):.1f} %" for v in load.values())
            print(f"| {label} | {pr} | {step * 1e3:.1f} | {shares} |")


if __name__ == "__main__":
    main()
