"""Does the ``channels_last`` memory format speed up our BPTT training step on the CPU? (issue 12)

    nice python benchmarks/channels_last.py                 # ResNet-18, T = 4, batch 16, fp32 and bf16
    nice python benchmarks/channels_last.py --steps 8 --threads 2

The step is ``benchmarks/train_step.py``'s (forward under the run's :class:`Precision`,
cross-entropy, backward, SGD) on our CIFAR ResNet-18 SNN (IF neurons, folded ``[T*B, ...]``
layout) with a 3x32x32 random batch.  Four configurations, (precision) x (memory format):
``contiguous`` (NCHW, what snnkd trains with) and ``channels_last`` (the model's 4-d
weights and the input batch converted with ``.to(memory_format=torch.channels_last)``).
One process runs them interleaved, a step of each in turn with the order alternating, so
load changes on a shared machine hit all alike; the median over ``--steps`` is reported
with the speed-up of ``channels_last`` over ``contiguous`` at the same precision.  A
product option is worth adding only at a speed-up >= 1.10x (printed MET / NOT MET).

Last run (defaults, torch 2.14.1, 1 thread on 2 busy cores): channels_last is slower,
fp32 0.79x (6127 -> 7778 ms a step), bf16 0.63x (3706 -> 5900 ms), so snnkd keeps NCHW
and has no option for it.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import _data, _set_T, _setup, _train_step, interleaved_times, step_parser  # noqa: E402  (the same step as train_step.py)

FORMATS = ("contiguous", "channels_last")


def stem_format(net, x) -> str:
    """Memory format of the first convolution's output (does channels_last propagate?)."""
    import torch

    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    seen: list[str] = []
    h = conv.register_forward_hook(lambda m, i, o: seen.append(
        "channels_last" if o.is_contiguous(memory_format=torch.channels_last) and not o.is_contiguous()
        else "contiguous"))
    with torch.no_grad():
        net.eval()
        net(x)
        net.train()
    h.remove()
    return seen[0]


def main() -> None:
    a = step_parser(__doc__, "--model", default="resnet18").parse_args()
    import torch

    torch.set_num_threads(a.threads)
    spec = {"model": a.model, "neuron": "if"}
    x, y = _data(a.batch)
    setups = {}
    for fmt in FORMATS:
        setup = _setup(spec, "bptt", a.T)
        _set_T(setup[0], "bptt", a.T)
        if fmt == "channels_last":
            setup[0].to(memory_format=torch.channels_last)
        setups[fmt] = setup
    inputs = {"contiguous": x, "channels_last": x.to(memory_format=torch.channels_last)}
    print(f"torch {torch.__version__}, {a.model} SNN bptt T={a.T}, batch {a.batch}, {a.threads} threads; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for fmt in FORMATS:
        print(f"  {fmt}: first convolution's output is {stem_format(setups[fmt][0], inputs[fmt])}")
    configs = [(fmt, pr) for pr in a.precision for fmt in FORMATS]
    t_start = time.time()
    times, _ = interleaved_times(configs, a.steps, lambda fmt, pr: _train_step(setups[fmt], inputs[fmt], y, pr),
                                 lambda rep: f"  round {rep + 1}/{1 + a.steps} ({time.time() - t_start:.0f}s)")
    med = {c: statistics.median(v) for c, v in times.items()}
    print(f"\n| precision | memory format | step ms (median of {a.steps}) | samples/s | speed-up vs contiguous |")
    print("|---|---|---:|---:|---:|")
    for fmt, pr in configs:
        print(f"| {pr} | {fmt} | {med[(fmt, pr)] * 1e3:.0f} | {a.batch / med[(fmt, pr)]:.2f} | "
              f"{med[('contiguous', pr)] / med[(fmt, pr)]:.2f}x |")
    print()
    for pr in a.precision:
        sp = med[("contiguous", pr)] / med[("channels_last", pr)]
        print(f"goal: {pr} channels_last BPTT step speed-up >= 1.10x to justify an option: {sp:.2f}x "
              f"({'MET' if sp >= 1.10 else 'NOT MET'})")
    print(f"total time {time.time() - t_start:.0f}s, load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
