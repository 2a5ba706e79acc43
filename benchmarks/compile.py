"""Does ``torch.compile`` speed up our BPTT training step on the CPU? (issue 12)

    nice python benchmarks/compile.py                         # resnet_tiny and ResNet-18, T = 4, fp32 and bf16
    nice python benchmarks/compile.py --models resnet_tiny --steps 10

The step is ``benchmarks/train_step.py``'s (forward under the run's :class:`Precision`,
cross-entropy, backward, SGD) on our SNN (IF neurons, folded ``[T*B, ...]`` layout) with a
3x32x32 random batch.  Two configurations per (model, precision): ``eager`` (what snnkd
trains with) and ``compiled`` (``torch.compile(net)``, default inductor backend; the
compilation happens in an untimed warm-up round and its time is printed separately).  One
process runs them interleaved, a step of each in turn with the order alternating, so load
changes on a shared machine hit both alike; the median over ``--steps`` is reported with the
speed-up of ``compiled`` over ``eager``.  A product option is worth adding only at a
speed-up >= 1.10x (printed MET / NOT MET) that also pays for the compilation within one
epoch of the default run.

Last run (2026-12-02, ``--models resnet_tiny --steps 6``, torch 2.14.1, 1 thread on 2 cores
shared with other jobs, load average 3.6-6.6): compiled is slower, fp32 0.81x (193 -> 237 ms
a step, 106 s to compile), bf16 0.02x (118 -> 5952 ms: the compiled bf16 graph recompiles or
falls back every step).  Our neuron's fused autograd function and per-step state break the
graph, so inductor gains nothing it could keep; snnkd therefore has no ``--compile`` option.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import _data, _setup, _train_step  # noqa: E402  (the same step as train_step.py)

MODES = ("eager", "compiled")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet_tiny", "resnet18"])
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration (median)")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, SNN bptt T={a.T}, batch {a.batch}, {a.threads} threads; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    x, y = _data(a.batch)
    rows = []
    for model in a.models:
        setups = {}
        for mode in MODES:
            net, method, step_fn, opt = _setup({"model": model, "neuron": "if"}, "bptt", a.T)
            setups[mode] = (torch.compile(net) if mode == "compiled" else net, method, step_fn, opt)
        configs = [(mode, pr) for pr in a.precision for mode in MODES]
        times: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
        warm: dict[tuple[str, str], float] = {}
        for rep in range(1 + a.steps):  # the first round compiles (one graph per precision)
            for mode, pr in (configs if rep % 2 == 0 else configs[::-1]):
                t0 = time.perf_counter()
                _train_step(setups[mode], x, y, pr)
                if rep:
                    times[(mode, pr)].append(time.perf_counter() - t0)
                else:
                    warm[(mode, pr)] = time.perf_counter() - t0
            print(f"  {model} round {rep + 1}/{1 + a.steps}", file=sys.stderr, flush=True)
        for mode, pr in configs:
            med = statistics.median(times[(mode, pr)])
            rows.append((model, pr, mode, med, warm[(mode, pr)], statistics.median(times[("eager", pr)]) / med))
    print(f"\n| model | precision | mode | step ms (median of {a.steps}) | first step s | speed-up vs eager |")
    print("|---|---|---|---:|---:|---:|")
    for model, pr, mode, med, first, sp in rows:
        print(f"| {model} | {pr} | {mode} | {med * 1e3:.0f} | {first:.1f} | {sp:.2f}x |")
    print()
    for model, pr, mode, _, first, sp in rows:
        if mode == "compiled":
            print(f"goal: {model} {pr} compiled BPTT step speed-up >= 1.10x: {sp:.2f}x "
                  f"({'MET' if sp >= 1.10 else 'NOT MET'}); compilation {first:.0f} s")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
